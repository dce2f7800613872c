"""End to end on tiny shapes: the CLI verbs on a DiT or a DiTPipeline given by path, and a SIGKILL mid-run of
train-gates resumed to the same gates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
                 "--batch", "8", "--rho", "0.05", "--lr", "1e-2")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["iters"] == 3 and gates.is_file()
    assert not (tmp_path / "g.safetensors.ckpt").exists()  # the default checkpoint folder goes once done
    res = invoke("sample", "--model", str(small_dit_dir), "--gates", str(gates), "--steps", "4", "--classes", "1,7",
                 "--n-per-class", "2", "--out", str(tmp_path / "s.png"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s.png").is_file() and 0 <= json.loads(res.output)["skip_fraction"] <= 1
    res = invoke("evaluate", "--model", str(small_dit_dir), "--gates", str(gates), "--steps", "4", "--n-per-class", "3",
                 "--classifier", str(small_classifier_dir))
    assert res.exit_code == 0, res.output
    assert {"fid", "precision", "recall", "class_acc", "skip_fraction", "macs_ratio"} <= set(json.loads(res.output))
    res = invoke("sample", "--model", str(small_dit_dir), "--gates", str(gates), "--steps", "5")
    assert isinstance(res.exception, InputError) and "--steps 4" in str(res.exception)


def test_a_saved_dit_pipeline_trains_gates_and_samples_with_guidance(small_pipeline_dir, tmp_path):
    images = small_pipeline_dir.parent / f"{small_pipeline_dir.name}-images.safetensors"
    gates = tmp_path / "g.safetensors"
    res = invoke("train-gates", "--pipeline", str(small_pipeline_dir), "--images", str(images), "--out", str(gates),
                 "--steps", "4", "--iters", "2", "--batch", "4", "--rho", "1e-3")
    assert res.exit_code == 0, res.output
    res = invoke("sample", "--pipeline", str(small_pipeline_dir), "--gates", str(gates), "--steps", "4",
                 "--guidance-scale", "4", "--classes", "3,999", "--n-per-class", "1", "--out", str(tmp_path / "s.png"))
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (tmp_path / "s.png").is_file() and 0 < out["macs_ratio"] <= 1.01
    res = invoke("train-gates", "--pipeline", str(small_pipeline_dir), "--out", str(gates), "--steps", "4")
    assert isinstance(res.exception, InputError) and "--images" in str(res.exception)


@pytest.mark.parametrize("args, error, text", [
    (["--scheduler", "euler"], UnsupportedError, "DDIM"),
    (["--threshold", "1.5"], InputError, "threshold"),
    (["--classes", "1,x"], InputError, "--classes"),
    (["--guidance-scale", "nan"], InputError, "guidance"),
    (["--steps", "0"], InputError, "--steps"),
    (["--n-per-class", "-1"], InputError, "--n-per-class"),
    (["--n-per-class", "10000000000000"], InputError, "--n-per-class"),
    (["--classes", "99999999999999999999999"], InputError, "class labels"),
    (["--classes", ",".join(["1"] * 101)], InputError, "--classes"),
])
def test_bad_cli_input_gives_a_clear_error(small_dit_dir, tmp_path, args, error, text):
    res = invoke("sample", "--model", str(small_dit_dir), "--out", str(tmp_path / "s.png"), *args)
    assert isinstance(res.exception, error) and text in str(res.exception)


@pytest.mark.parametrize("args, text", [
    (["--rho", "1e308"], "--rho"),
    (["--rho", "nan"], "--rho"),
    (["--lr", "0"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--batch", "10000000000000"], "--batch"),
    (["--iters", "-1"], "--iters"),
    (["--window", "4"], "--window"),
])
def test_bad_train_gates_numbers_are_refused_before_any_work(small_dit_dir, tmp_path, args, text):
    res = invoke("train-gates", "--model", str(small_dit_dir), "--out", str(tmp_path / "g.safetensors"), "--steps", "4",
                 "--objective", "end-point", *args)
    assert isinstance(res.exception, InputError) and text in str(res.exception)


def test_a_seed_out_of_range_is_a_usage_error(small_dit_dir, tmp_path):
    for verb in ("train-gates", "sample", "evaluate"):
        res = invoke(verb, "--model", str(small_dit_dir), "--seed", "10000000000000")
        assert res.exit_code == 2 and "--seed" in res.output


def test_a_checkpoint_of_other_gates_is_refused_and_a_file_is_no_checkpoint_folder(small_dit_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    common = ["--model", str(small_dit_dir), "--out", str(tmp_path / "g.safetensors"), "--checkpoint-dir", str(ckpt),
              "--iters", "3", "--batch", "2", "--save-every", "1"]
    assert invoke("train-gates", *common, "--steps", "4").exit_code == 0
    res = invoke("train-gates", *common, "--steps", "6")
    assert isinstance(res.exception, InputError) and "does not belong" in str(res.exception)
    (tmp_path / "file").write_text("x")
    res = invoke("train-gates", *common[:4], "--checkpoint-dir", str(tmp_path / "file"))
    assert res.exit_code != 0 and "not a folder" in str(res.exception)


def test_a_folder_without_a_dit_is_rejected(tmp_path):
    res = invoke("sample", "--model", str(tmp_path))
    assert isinstance(res.exception, InputError) and "config.json" in str(res.exception)
    res = invoke("sample", "--pipeline", str(tmp_path))
    assert isinstance(res.exception, InputError) and "model_index.json" in str(res.exception)


def test_tiny_dit_is_registered_in_the_zoo():
    from tenfold.zoo.registry import get_model

    assert "DiT" in get_model("tiny-dit").description


def _train_cmd(model_dir: Path, out: Path, ckpt: Path) -> list[str]:
    return [sys.executable, "-m", "tenfold", "--threads", "1", "--quiet", "lazydit", "train-gates", "--model",
            str(model_dir), "--out", str(out), "--checkpoint-dir", str(ckpt), "--steps", "4", "--iters", "60",
            "--batch", "8", "--lr", "1e-2", "--rho", "1e-2", "--save-every", "5"]


@pytest.mark.slow
def test_train_gates_killed_mid_run_resumes_to_the_same_gates(small_dit_dir, tmp_path):
    from tenfold.lazydit.gates import LazyGates

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TENFOLD_DEVICE": "cpu"}
    straight = tmp_path / "straight.safetensors"
    subprocess.run(_train_cmd(small_dit_dir, straight, tmp_path / "ckpt-straight"), check=True, env=env, timeout=900,
                   capture_output=True)
    killed, ckpt = tmp_path / "killed.safetensors", tmp_path / "ckpt-killed"
    proc = subprocess.Popen(_train_cmd(small_dit_dir, killed, ckpt), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 900
    while time.time() < deadline and not (ckpt / "gates-train.json").is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert (ckpt / "gates-train.json").is_file() and not killed.exists()
    from tenfold.core.io import Checkpoint

    done_before = Checkpoint(ckpt, "gates-train").load()["iter"]
    assert 5 <= done_before < 60
    subprocess.run(_train_cmd(small_dit_dir, killed, ckpt), check=True, env=env, timeout=900, capture_output=True)
    a, b = LazyGates.load(straight), LazyGates.load(killed)
    assert a.attn.abs().sum() > 0
    assert (a.attn - b.attn).abs().max() < 1e-6 and (a.mlp - b.mlp).abs().max() < 1e-6
