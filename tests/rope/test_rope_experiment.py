"""The claims' computations (with their negative controls), the job list, gathering, and a smoke run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from tenfold.core.errors import InputError
from tenfold.core.results import Result, load_result
from tenfold.rope.cli import app
from tenfold.rope.experiment import (
    PAPER,
    PROFILES,
    contrast_claim,
    depth_index,
    gather,
    reproduce,
    run_missing,
    slope,
    slope_claim,
)
from tenfold.rope.sweeps import all_jobs, loops_for_size


def scratch() -> Result:
    return Result(method="rope", kind="reproduce", paper=PAPER)


def test_slope_is_depth_steps_per_doubling_and_no_success_counts_one_step_past_the_grid():
    assert slope([8, 16, 32], [0.0, 1.0, 2.0]) == pytest.approx(1.0)
    assert slope([11, 23, 47], [1.0, 1.0, 1.0]) == pytest.approx(0.0)
    assert depth_index(4, (1, 2, 4)) == 2.0 and depth_index(None, (1, 2, 4)) == 3.0
    assert [loops_for_size(n) for n in (7, 15, 31, 63)] == [4, 5, 6, 7]


def test_slope_claim_holds_for_a_clear_difference():
    r = scratch()
    slope_claim(r, "boolean", "rope", [2.0, 2.2, 1.9], [0.1, 0.0, 0.2])
    assert r.claims[0].verdict == "holds"


@pytest.mark.parametrize("ours,ref", [
    ([0.5, 0.0, 1.0], [0.5, 0.0, 1.0]),  # the control family against itself
    ([0.5, 1.0, 0.0], [1.0, 0.0, 0.5]),  # two families with the same slopes in another seed order
    ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),  # the control relabelled as the hard family
])
def test_slope_claim_negative_controls_do_not_hold(ours, ref):
    r = scratch()
    slope_claim(r, "boolean", "rope", ours, ref)
    assert r.claims[0].verdict != "holds"


def test_contrast_claim_holds_when_growing_depth_is_clearly_better_and_not_for_a_relabelled_fixed_model():
    rng = np.random.default_rng(0)
    fixed = [{"test_correct": "".join(rng.choice(["0", "1"], 300, p=[0.4, 0.6])), "test_acc": 0.6}]
    better = [{"test_correct": "".join("1" if c == "1" or rng.random() < 0.8 else "0" for c in fixed[0]["test_correct"]),
               "test_acc": 0.9}]
    r = scratch()
    contrast_claim(r, 31, better, fixed, "looped", "L4w24")
    contrast_claim(r, 15, fixed, fixed, "L4w24 relabelled", "L4w24")  # the null: a fixed-depth model as ours
    assert [c.verdict for c in r.claims] == ["holds", "inconclusive"]


def test_job_list_covers_every_cell_and_ids_are_unique():
    jobs = all_jobs(PROFILES["quick"].sweep, seed=0)
    ids = [j.id for j in jobs]
    depth = [j.params for j in jobs if j.params["kind"] == "depth"]
    # Boolean: 6 seeds x 2 families x 4 sizes; arithmetic capped at 2 seeds x 2 families x 3 sizes; 5 contrast models
    assert len(ids) == len(set(ids)) == 6 * 2 * 4 + 2 * 2 * 3 + 5
    assert {p["seed"] for p in depth if p["task"] == "arithmetic"} == {0, 1}
    assert {p["size"] for p in depth if p["task"] == "boolean"} == {11, 17, 33, 63}  # about 8 to 64 tokens
    more = all_jobs(PROFILES["quick"].sweep, seed=0, rope_seeds=3)  # --seeds overrides every task's count
    assert {p.params["seed"] for p in more if p.params["kind"] == "depth"} == {0, 1, 2}
    assert len(more) == 3 * 2 * 4 + 3 * 2 * 3 + 5
    encodings = all_jobs(PROFILES["quick-encodings"].sweep, seed=0)
    assert {j.params["position"] for j in encodings} == {"rope", "nope", "alibi"}
    assert {j.id for j in encodings if j.params["position"] == "rope"} <= set(ids)  # shared with quick: reused
    res = CliRunner().invoke(app, ["sweep", "--profile", "quick", "--list"])
    assert res.exit_code == 0 and [json.loads(line)["id"] for line in res.output.splitlines()] == ids
    res = CliRunner().invoke(app, ["sweep", "--profile", "quick", "--run-index", str(len(ids)), "--out", "x"])
    assert res.exit_code != 0 and "out of range: this sweep has 65 jobs, 0 to 64" in str(res.exception)


def test_reproduce_runs_one_worker_per_usable_core_unless_told_otherwise(monkeypatch):
    from tenfold.rope import experiment

    monkeypatch.setattr(experiment, "usable_cores", lambda: 5)
    monkeypatch.setattr(experiment, "requested_threads", lambda: None)
    assert experiment.default_workers(PROFILES["quick"]) == 5
    assert experiment.default_workers(PROFILES["smoke"]) == 1  # seconds of work: spawning would cost more
    monkeypatch.setattr(experiment, "requested_threads", lambda: 3)  # tenfold --threads 3
    assert experiment.default_workers(PROFILES["quick"]) == 3


def test_smoke_sweep_has_clean_splits_every_curve_and_its_claims(tmp_path):
    result = reproduce("smoke", 0, tmp_path)
    m = result.metrics
    assert m["train_test_overlap"] == m["train_val_overlap"] == m["val_test_overlap"] == 0
    assert set(m["L_star"]["boolean"]) == {"rope", "nope", "alibi"}
    assert set(m["L_star"]["boolean"]["rope"]["balanced"]) == {"7", "15"}
    assert len(m["L_star"]["boolean"]["rope"]["skewed"]["15"]) == 2  # two seeds
    assert all(s["train_duplicates"] >= 0 for s in m["splits"]["boolean"].values())
    assert {c.id for c in result.claims} == {"depth_grows_faster_balanced_boolean_rope", "growing_depth_beats_fixed_n15"}
    assert all(c.interval is not None and c.evidence for c in result.claims)
    assert all((tmp_path / a).is_file() for a in result.artifacts)
    assert run_missing(PROFILES["smoke"].sweep, all_jobs(PROFILES["smoke"].sweep, 0, 2), tmp_path, 0) == []  # resumable
    (tmp_path / "jobs" / "contrast-boolean-n15-cot-s0.json").unlink()
    with pytest.raises(InputError, match="1 of 20 jobs have no result"):
        gather(PROFILES["smoke"], tmp_path, 0)


def _comparable(path) -> dict:
    """A result without its timings (CPU seconds are the only numbers a rerun may change)."""
    r = load_result(path)
    return {"metrics": r.metrics, "claims": [c.to_dict() for c in r.claims]}


@pytest.mark.slow
def test_a_killed_sweep_reruns_only_the_missing_jobs_and_ends_as_an_uninterrupted_one(tmp_path):
    cmd = [sys.executable, "-m", "tenfold.cli", "--threads", "1", "rope", "sweep", "--profile", "smoke"]
    env = {k: v for k, v in os.environ.items() if k != "TENFOLD_QUIET"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([*cmd, "--out", str(whole)], check=True, capture_output=True, timeout=900, env=env)
    proc = subprocess.Popen([*cmd, "--out", str(killed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    jobs = killed / "jobs"
    deadline = time.time() + 600
    while time.time() < deadline and len(list(jobs.glob("*.json")) if jobs.is_dir() else []) < 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_bytes() for p in jobs.glob("*.json")}  # a job file is whole or absent (atomic rename)
    assert 3 <= len(before) < 20 and not (killed / "result.json").exists()
    assert all(json.loads(data)["result"] for data in before.values())
    rerun = subprocess.run([*cmd, "--out", str(killed)], check=True, capture_output=True, text=True, timeout=900,
                           env=env)
    assert f"{20 - len(before)} of 20 jobs to run ({len(before)} already done)" in rerun.stderr
    # finished jobs were not rerun: their files (which record CPU seconds) are byte for byte the same
    assert all((jobs / name).read_bytes() == data for name, data in before.items())
    assert _comparable(killed / "result.json") == _comparable(whole / "result.json")


def test_slope_claim_evidence_names_the_per_seed_slopes_and_a_zero_width_interval():
    r = scratch()
    slope_claim(r, "boolean", "rope", [1.86, 1.86, 1.86], [0.0, 0.0, 0.0])
    assert "balanced 1.86, 1.86, 1.86, skewed 0.00, 0.00, 0.00" in r.claims[0].evidence
    assert "zero width" in r.claims[0].evidence
    slope_claim(r, "boolean", "nope", [2.0, 2.2, 1.9], [0.1, 0.0, 0.2])
    assert "zero width" not in r.claims[1].evidence


def test_slope_claim_names_a_sweep_that_no_depth_could_learn():
    r = scratch()
    slope_claim(r, "arithmetic", "rope", [0.0, 0.0], [0.0, 0.0], censored=True)
    assert r.claims[0].verdict == "inconclusive" and "0 by censoring" in r.claims[0].evidence


def test_a_validation_tie_among_fixed_models_goes_to_the_stronger_one_never_to_ours():
    from tenfold.rope.experiment import _contrast_metrics

    spec = PROFILES["smoke"].sweep  # contrast models: looped, cot, L1w32, L4w16
    rows = {"looped": (0.8, 0.8), "cot": (0.7, 0.6), "L1w32": (0.85, 0.78), "L4w16": (0.85, 0.82)}  # (val, test)
    contrast = [({"size": 15, "model": m}, {"val_acc": v, "test_acc": t, "parameters": 1, "loops": None})
                for m, (v, t) in rows.items()]
    choice = _contrast_metrics(spec, contrast)["contrast_choice"]["15"]
    assert choice == {"growing": "looped", "fixed": "L4w16"}  # L1w32 is listed first but tests worse


def test_jobs_run_by_worker_processes_match_the_same_jobs_run_in_this_process(tmp_path):
    spec = PROFILES["smoke"].sweep
    jobs = [j for j in all_jobs(spec, 0, 2) if j.params["family"] == "balanced" and j.params["size"] == 15][:3]
    assert run_missing(spec, jobs, tmp_path / "pool", 0, workers=2) == [j.id for j in jobs]
    run_missing(spec, jobs, tmp_path / "here", 0, workers=1)

    def numbers(folder):
        out = {}
        for p in sorted((folder / "jobs").glob("*.json")):
            data = json.loads(p.read_text())
            data["result"].pop("cpu_seconds")
            out[p.name] = data
        return out

    assert numbers(tmp_path / "pool") == numbers(tmp_path / "here") and len(numbers(tmp_path / "here")) == 3
