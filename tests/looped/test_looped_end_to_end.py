"""Training, the claims' computations with their negative controls, the CLI verbs and a smoke reproduce."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tenfold.core.errors import InputError
from tenfold.core.io import load_tensors, save_tensors
from tenfold.core.results import Result, load_result
from tenfold.looped import LinearLoopedTransformer, TaskConfig, TrainConfig, train_model
from tenfold.looped.cli import app
from tenfold.looped.experiment import PAPER, at_least_claim, falls_claim, rate_claim, reproduce, shift_claim
from tenfold.looped.sweeps import trained_looped

SCRIPT = Path(__file__).parent / "scripts" / "ddp_looped.py"


def scratch() -> Result:
    return Result(method="looped", kind="reproduce", paper=PAPER)


def test_training_lowers_the_query_loss_on_random_covariances():
    model = LinearLoopedTransformer(3, 1, seed=0)
    losses = train_model(model, TaskConfig(d=3, n=12, kappa_max=10.0), 2, TrainConfig(steps=60, batch=64, lr=3e-2))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_rate_claim_holds_near_one_and_fails_for_no_loops_or_half_the_step():
    rng = np.random.default_rng(0)
    near = 1 + 0.01 * rng.standard_normal(200)
    r = scratch()
    rate_claim(r, "a", "near", near)
    rate_claim(r, "no_loops", "null: slope 0", np.zeros(200))
    rate_claim(r, "half_step", "null: GD at half the step converges at about half the rate", 0.5 + 0.01 * near)
    assert [c.verdict for c in r.claims] == ["holds", "fails", "fails"]


def test_at_least_and_falls_claims_do_not_hold_under_their_nulls():
    r = scratch()
    at_least_claim(r, "plateau", "null: stops improving", np.zeros((50, 3)), 1.0, "GD")
    at_least_claim(r, "gd_itself", "null: plain GD measured against itself", np.ones(50), 1.0, "GD")
    late = np.log10(np.random.default_rng(1).uniform(1e-3, 1e-2, 80))
    falls_claim(r, "fixed_T", "null: T held fixed", late, late)
    falls_claim(r, "three_x", "null: only 3x lower, not 10x", late - np.log10(3), late)
    assert [c.verdict for c in r.claims] == ["fails", "inconclusive", "fails", "fails"]


def test_shift_claim_holds_for_gd_like_errors_and_fails_for_an_untrained_model():
    rng = np.random.default_rng(2)
    gd = np.log(rng.uniform(0.05, 0.2, (100, 3)))
    r = scratch()
    shift_claim(r, "gd_like", "trained = GD", gd + 0.01 * rng.standard_normal(gd.shape), gd)
    shift_claim(r, "untrained", "null: untrained", np.log(np.full_like(gd, 0.9)), gd)
    shift_claim(r, "gd_relabelled_times_1_5", "null: 1.5x GD", gd + np.log(1.5), gd)
    assert [c.verdict for c in r.claims] == ["holds", "fails", "fails"]


def test_smoke_reproduce_writes_every_claim_plot_and_null(tmp_path):
    result = reproduce("smoke", 0, tmp_path)
    ids = {c.id for c in result.claims}
    assert ids == {"construction_equals_gd", "constructed_rate_matches_gd", "constructed_beats_paper_rate",
                   "trained_keeps_gd_rate_unrolled", "error_at_2d_keeps_falling", "shift_trained_close_to_gd"}
    assert result.metrics["construct_vs_gd_max_rel"] < 1e-10
    assert all(c.exact or (c.interval is not None and c.evidence) for c in result.claims)
    assert all(v["verdict"] != "holds" for v in result.metrics["nulls"].values())
    assert set(result.metrics["nulls"]) == ids - {"construction_equals_gd"}
    assert all((tmp_path / a).is_file() for a in result.artifacts)
    assert "0.895" not in json.dumps(result.to_dict())


def test_cli_construct_on_user_prompts_matches_gd(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 10, 3))
    W = rng.normal(size=(4, 1, 3))
    path = tmp_path / "prompts.npz"
    np.savez(path, X=X, Y=X @ W.transpose(0, 2, 1), xq=rng.normal(size=(4, 3)))
    res = CliRunner().invoke(app, ["construct", "--data", str(path), "--T", "5"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["max_abs_vs_gd"] < 1e-10


def test_cli_train_saves_weights_that_construct_can_run(tmp_path):
    out = tmp_path / "w.safetensors"
    res = CliRunner().invoke(app, ["train", "--T", "2", "--d", "3", "--n", "9", "--steps", "5", "--kappa-max", "5",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["construct", "--weights", str(out), "--T", "2", "--d", "3", "--n", "9"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["construct", "--weights", str(out), "--T", "2", "--d", "4", "--n", "9"])
    assert res.exit_code != 0 and "d + m" in str(res.exception)


def test_cli_sweeps_report_the_rate_and_the_error_table():
    res = CliRunner().invoke(app, ["sweep", "--what", "rate", "--d", "4", "--n-per-d", "4", "--T", "60",
                                   "--prompts", "30"])
    assert res.exit_code == 0, res.output
    assert abs(json.loads(res.output)["median_ratio_measured_over_gd"] - 1) < 0.05
    res = CliRunner().invoke(app, ["sweep", "--what", "n", "--d", "4", "--values", "0.5,4", "--T", "20",
                                   "--prompts", "20"])
    rows = json.loads(res.output)
    assert rows["4"]["T=20"] < rows["0.5"]["T=20"] and rows["0.5"]["least_squares"] > 0.1  # n < d: a floor
    res = CliRunner().invoke(app, ["sweep", "--what", "rate", "--d", "4", "--n-per-d", "1"])
    assert res.exit_code != 0 and "n > d" in str(res.exception)


@pytest.mark.parametrize("args", [["construct", "--T", "10000000000000"], ["construct", "--d", "10000000000000"],
                                  ["sweep", "--prompts", "10000000000000"], ["train", "--m", "10000000000000"],
                                  ["train", "--steps", "10000000000000"], ["construct", "--kappa", "1e308"],
                                  ["construct", "--eta", "inf"], ["sweep", "--n-per-d", "nan"],
                                  ["construct", "--kappa", "nan"], ["construct", "--eta", "nan"]])
def test_the_parser_refuses_sizes_and_scales_beyond_their_bounds(args):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "Invalid value" in res.output


@pytest.mark.parametrize("args, message", [
    (["sweep", "--n-per-d", "2000", "--d", "8"], "n-per-d"), (["sweep", "--what", "n", "--values", "0.5,inf"], "values"),
    (["sweep", "--what", "n", "--values", "nan"], "values"),
    (["sweep", "--d", "512", "--n-per-d", "19", "--prompts", "100000"], "GB"),
])
def test_non_finite_or_too_large_values_are_one_input_error(args, message):
    res = CliRunner().invoke(app, args)
    assert isinstance(res.exception, InputError) and message in str(res.exception)


def test_cli_construct_refuses_an_empty_prompt_file_and_foreign_weights(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    res = CliRunner().invoke(app, ["construct", "--data", str(empty)])
    assert isinstance(res.exception, InputError) and "empty" in str(res.exception)
    other = tmp_path / "other.safetensors"
    save_tensors(other, {"W": torch.zeros(2, 2)})
    res = CliRunner().invoke(app, ["construct", "--weights", str(other)])
    assert isinstance(res.exception, InputError) and "expected tensors P and Q" in str(res.exception)


def _comparable(path: Path) -> dict:
    """A result without its timings (CPU seconds are the only numbers a rerun may change)."""
    r = load_result(path)
    return {"metrics": r.metrics, "claims": [c.to_dict() for c in r.claims]}


@pytest.mark.slow
def test_a_killed_reproduce_resumes_from_its_trained_models_and_ends_as_an_uninterrupted_one(tmp_path):
    cmd = [sys.executable, "-m", "tenfold.cli", "--threads", "1", "looped", "reproduce", "--profile", "smoke"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([*cmd, "--out", str(whole)], check=True, capture_output=True, timeout=600, env=env)
    assert not (whole / "looped" / "trained").exists()  # the resume cache is gone once a run completes
    proc = subprocess.Popen([*cmd, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    cache = killed / "looped" / "trained"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cache.glob("*.safetensors")) if cache.is_dir() else []) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_bytes() for p in cache.glob("*.safetensors")}
    assert len(before) >= 3 and not (killed / "looped" / "result.json").exists()
    assert all(load_tensors(cache / name).keys() == {"P", "Q"} for name in before)  # whole files (atomic rename)
    subprocess.run([*cmd, "--out", str(killed)], check=True, capture_output=True, timeout=600, env=env)
    assert _comparable(killed / "looped" / "result.json") == _comparable(whole / "looped" / "result.json")


def test_trained_weights_loaded_from_the_cache_are_the_trained_ones(tmp_path):
    task, cfg = TaskConfig(d=3, n=12, kappa=2.0), TrainConfig(steps=5, batch=16)
    fresh = trained_looped(task, 2, cfg, 0, tmp_path)
    (saved,) = tmp_path.glob("*.safetensors")
    loaded = trained_looped(task, 2, cfg, 0, tmp_path)
    assert torch.equal(fresh.P, loaded.P) and torch.equal(fresh.Q, loaded.Q) and loaded.P.dtype == torch.float64
    other = trained_looped(task, 2, cfg, 1, tmp_path)  # another seed is another file, not the cached model
    assert len(list(tmp_path.glob("*.safetensors"))) == 2 and not torch.equal(other.Q, fresh.Q)


@pytest.mark.slow
def test_two_cpu_processes_train_the_same_looped_model_as_one(tmp_path, one_and_two_processes):
    one, two = one_and_two_processes(SCRIPT)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["processes"] == 1 and b["processes"] == 2
    assert torch.allclose(torch.tensor(a["weights"]), torch.tensor(b["weights"]), atol=1e-10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json", "two.json"]


@pytest.mark.gpu
def test_training_on_cuda_returns_a_cpu_model_that_matches_its_own_rate():
    from tenfold.core.runtime import configure
    from tenfold.looped.sweeps import trained_looped

    configure(device="cuda")
    try:
        model = trained_looped(TaskConfig(d=4, n=16, kappa=2.0), 4, TrainConfig(steps=30, batch=32), 0)
    finally:
        configure(device="auto")
    assert model.P.device.type == "cpu" and model.P.dtype == torch.float64


def test_cli_rate_sweep_drops_prompts_that_reach_round_off_before_a_slope_can_be_fitted():
    """At d = 1, n = 1000 most prompts reach the 1e-11 floor within 8 loops (no window to fit): the verb reports
    the rate over the prompts it could fit and counts the others, as `reproduce` does, instead of failing on NaN."""
    res = CliRunner().invoke(app, ["sweep", "--what", "rate", "--d", "1", "--n-per-d", "1000", "--kappa", "1",
                                   "--T", "20", "--prompts", "40"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.output)
    assert 0 < row["unfitted_prompts"] < 40 and abs(row["median_ratio_measured_over_gd"] - 1) < 0.05
    assert np.isfinite(row["median_ratio_measured_over_paper"])


@pytest.mark.parametrize("base", [0, 1, 999_990, 2_147_483_547])
def test_training_prompt_seeds_never_meet_the_evaluation_prompt_seeds(base):
    """Held-out prompts are held out by seed: every seed a profile's training draws from (any training seed of
    the run, any step) lies outside the test, tuning and n/d-sweep prompt seeds of that run."""
    from dataclasses import replace

    from tenfold.looped.experiment import PROFILES
    from tenfold.looped.sweeps import TEST_SEED, TUNE_SEED
    from tenfold.looped.training import train_seed

    for prof in PROFILES.values():
        seeds = range(base, base + prof.seeds)
        held_out = {s + TEST_SEED for s in seeds} | {s + TUNE_SEED for s in seeds} | {
            base + TEST_SEED + 100 * i for i in range(len(prof.sample_ratios))}
        lowest_train = min(train_seed(replace(prof.train, seed=s), 0) for s in seeds)
        assert lowest_train > max(held_out)
