"""End to end on tiny shapes: the CLI verbs on a DiT given by path, and a tiny reproduce run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tenfold.core.errors import InputError, UnsupportedError

runner = CliRunner()


def invoke(*args):
    from tenfold.cli import app
    from tenfold.core.runtime import torch_threads

    with torch_threads(1):  # tiny shapes: one thread is fastest, and the setting is restored afterwards
        return runner.invoke(app, ["lazydit", *args])


def test_train_gates_then_sample_and_evaluate_by_path(small_dit_dir, small_classifier_dir, tmp_path):
    gates = tmp_path / "g.safetensors"
    res = invoke("train-gates", "--model", str(small_dit_dir), "--out", str(gates), "--steps", "4", "--iters", "3",
                 "--batch", "8", "--rho", "0.05")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["iters"] == 3 and gates.is_file()
    res = invoke("sample", "--model", str(small_dit_dir), "--gates", str(gates), "--steps", "4", "--classes", "1,7",
                 "--n-per-class", "2", "--out", str(tmp_path / "s.png"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s.png").is_file() and 0 <= json.loads(res.output)["skip_fraction"] <= 1
    res = invoke("evaluate", "--model", str(small_dit_dir), "--gates", str(gates), "--steps", "4", "--n-per-class", "3",
                 "--classifier", str(small_classifier_dir))
    assert res.exit_code == 0, res.output
    assert {"fid", "class_acc", "skip_fraction", "macs_ratio", "seconds_per_image"} <= set(json.loads(res.output))
    res = invoke("sample", "--model", str(small_dit_dir), "--gates", str(gates), "--steps", "5")
    assert isinstance(res.exception, InputError) and "--steps 4" in str(res.exception)


@pytest.mark.parametrize("args, error, text", [
    (["--scheduler", "euler"], UnsupportedError, "DDIM"),
    (["--threshold", "1.5"], InputError, "threshold"),
    (["--classes", "1,x"], InputError, "--classes"),
])
def test_bad_cli_input_gives_a_clear_error(small_dit_dir, tmp_path, args, error, text):
    res = invoke("sample", "--model", str(small_dit_dir), "--out", str(tmp_path / "s.png"), *args)
    assert isinstance(res.exception, error) and text in str(res.exception)


def test_a_folder_without_a_dit_is_rejected(tmp_path):
    res = invoke("sample", "--model", str(tmp_path))
    assert isinstance(res.exception, InputError) and "config.json" in str(res.exception)


def test_tiny_reproduce_writes_every_method_claims_and_plots(small_dit, small_classifier_dir, tmp_path):
    from tenfold.data.images import load_digits
    from tenfold.lazydit.experiment import METHODS, Settings, run_experiment
    from tenfold.zoo.digit_classifier import load_digit_classifier

    model, scheduler = small_dit
    train, _ = load_digits(8).split(0.2, seed=0)
    settings = Settings(steps=4, n_per_class=4, gate_iters=3, gate_batch=8, rho=0.05, curve_thresholds=(0.7,),
                        curve_rhos=(0.2,))
    result = run_experiment(settings, tmp_path, seed=0, profile="test",
                            loaded=(model, scheduler, load_digit_classifier(small_classifier_dir), train))
    methods = result.metrics["methods"]
    assert list(methods) == list(METHODS)
    for row in methods.values():
        assert {"fid", "class_acc", "skip_fraction", "macs_ratio", "seconds_per_image"} <= set(row)
    assert methods["ddim"]["macs_ratio"] == pytest.approx(1.0) and methods["ddim"]["skip_fraction"] == 0
    assert [(c["rho"], c["threshold"]) for c in result.metrics["curve"]] == [(0.05, 0.5), (0.05, 0.7), (0.2, 0.5)]
    assert {c.id for c in result.claims} >= {"lazydit_fid_below_ddim_fewer", "lazydit_fid_below_static_cache",
                                             "lazydit_skips_30pct", "gate_training_lowers_penalty",
                                             "lazydit_fid_within_budget"}
    ablation = result.metrics["lazydit_paper_objective"]
    assert ablation["rollout"] == 1 and ablation["objective"] == "eps" and 0 <= ablation["skip_fraction"] <= 1
    for name in result.artifacts:
        assert (tmp_path / name).is_file()
    result.write(tmp_path)


def test_tiny_dit_is_registered_in_the_zoo():
    from tenfold.zoo.registry import get_model

    assert "DiT" in get_model("tiny-dit").description


@pytest.mark.slow
def test_quick_reproduce_end_to_end(tmp_path):
    from tenfold.lazydit.experiment import reproduce

    result = reproduce("quick", 0, tmp_path)
    assert set(result.metrics["methods"]) == {"ddim", "ddim-fewer", "static-cache", "l2c", "lazydit"}
    assert result.metrics["methods"]["ddim"]["class_acc"] > 0.8  # the zoo DiT draws recognisable digits
