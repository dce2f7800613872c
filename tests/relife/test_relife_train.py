"""The training loop: targets, early stopping, determinism, checkpoint resume, and the IPS weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.core.io import Checkpoint
from tenfold.core.runtime import seed_everything
from tenfold.data.lists import ListConfig, SimulatorConfig, build_logged_lists, build_simulated_lists
from tenfold.data.movielens import load_atomic
from tenfold.relife.train import TrainConfig, objective, predict, targets, train_model

CFG = ListConfig(list_len=5, history_lists=2, ranker_epochs=5)


@pytest.fixture(scope="module")
def sim(toy_atomic):
    return build_simulated_lists(load_atomic(toy_atomic), CFG, SimulatorConfig(lists_per_user=5, test_lists=1, seed=0))


def test_ips_targets_are_clicks_over_clipped_propensities_and_logged_lists_refuse_them(sim, toy_atomic):
    t = targets(sim.train, "ips", min_propensity=0.1)
    assert np.allclose(t, sim.train.labels / np.maximum(sim.train.propensity, 0.1))
    assert np.array_equal(targets(sim.train, "intent"), sim.train.intent)
    logged = build_logged_lists(load_atomic(toy_atomic), CFG)
    with pytest.raises(InputError, match="logged lists"):
        targets(logged.train, "ips")
    with pytest.raises(InputError, match="signal"):
        targets(sim.train, "clicks")


def _train(sim, name="relife", folder=None, **kw):
    seed_everything(0)
    cfg = TrainConfig(max_epochs=kw.pop("epochs", 3), batch_size=16, lr=1e-2, patience=kw.pop("patience", 5), seed=0)
    return train_model(name, sim, cfg, "intent", dim=8, folder=folder)


def test_training_is_deterministic_and_keeps_the_best_validation_epoch(sim):
    (a, ha), (b, hb) = _train(sim), _train(sim)
    assert np.array_equal(predict(a, sim.test), predict(b, sim.test)) and ha == hb
    best = int(np.argmin(ha["val"])) + 1
    assert ha["best_epoch"] == best
    assert np.isclose(objective(a, sim.val, targets(sim.val, "intent")), min(ha["val"]), atol=1e-6)


def test_early_stopping_stops_after_patience_epochs_without_improvement(sim):
    _, history = _train(sim, epochs=6, patience=1)
    assert len(history["val"]) == min(6, history["best_epoch"] + 1)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(sim, tmp_path):
    full, _ = _train(sim, epochs=3)
    _train(sim, epochs=1, folder=tmp_path)  # stopped after one epoch, checkpoint kept
    assert Checkpoint(tmp_path, "checkpoint-model").load()["epoch"] == 1
    resumed, _ = _train(sim, epochs=3, folder=tmp_path)
    assert all(torch.equal(x, y) for x, y in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True))


def test_prm_pretrains_its_personal_vector_first(sim, tmp_path):
    model, history = _train(sim, "prm", folder=tmp_path, epochs=1)
    assert "pretrain" in history and Checkpoint(tmp_path, "checkpoint-personal").exists()
    assert not any(p.requires_grad for p in model.personal.parameters())


def test_bad_training_settings_are_rejected():
    with pytest.raises(InputError, match="max_epochs"):
        TrainConfig(max_epochs=0)
    with pytest.raises(InputError, match="min_propensity"):
        TrainConfig(min_propensity=0.0)
