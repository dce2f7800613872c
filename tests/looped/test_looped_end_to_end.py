"""Training, the CLI verbs and a tiny reproduce run."""

from __future__ import annotations

import json

import numpy as np
import torch
from typer.testing import CliRunner

from tenfold.looped import LinearLoopedTransformer, TaskConfig, TrainConfig, train_model
from tenfold.looped.cli import app


def test_training_lowers_the_query_loss():
    model = LinearLoopedTransformer(3, 1, seed=0)
    losses = train_model(model, TaskConfig(d=3, n=12), 2, TrainConfig(steps=60, batch=64, lr=3e-2))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


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
    res = CliRunner().invoke(app, ["train", "--T", "2", "--d", "3", "--n", "9", "--steps", "5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["construct", "--weights", str(out), "--T", "2", "--d", "3", "--n", "9"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["construct", "--weights", str(out), "--T", "2", "--d", "4", "--n", "9"])
    assert res.exit_code != 0 and "d + m" in str(res.exception)


def test_tiny_reproduce_writes_claims_and_plots(tmp_path, monkeypatch):
    from tenfold.looped import experiment

    tiny = experiment.Profile(d=3, n_per_d=4, kappa_T=2.0, Ts=(1, 2), train=TrainConfig(steps=30, batch=32),
                              test=64, sweep_d=3, ratios=(1, 4), kappas=(1, 10), T_sweep=5)
    monkeypatch.setitem(experiment.PROFILES, "quick", tiny)
    result = experiment.reproduce("quick", 0, tmp_path)
    assert set(result.metrics) >= {"construct_vs_gd_max_abs", "trained_err_by_T", "gd_err_by_T", "err_by_n_over_d",
                                   "err_by_kappa"}
    assert result.metrics["construct_vs_gd_max_abs"] < 1e-8
    assert {c.id for c in result.claims} >= {"construction_equals_gd", "trained_tracks_gd"}
    assert all((tmp_path / a).is_file() for a in result.artifacts)
    assert torch.isfinite(torch.tensor(list(result.metrics["trained_err_by_T"].values()))).all()
