"""Gate training: only the gates move, the penalty falls, and an interrupted run resumes exactly."""

from __future__ import annotations

import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.lazydit.baselines import L2CRouter
from tenfold.lazydit.gates import LazyConfig, LazyGates
from tenfold.lazydit.train import train_gates


def digits():
    from tenfold.data.images import load_digits

    train, _ = load_digits(8).split(0.2, seed=0)
    return train.images[:200] * 2 - 1, train.labels[:200]


def test_training_lowers_the_penalty_and_leaves_the_dit_frozen(small_dit):
    model, scheduler = small_dit
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = digits()
    gates = LazyGates(4, 2, 16)
    cfg = LazyConfig(rho_attn=0.05, rho_mlp=0.05, lr=5e-2, train_iters=12, batch_size=16)
    history = train_gates(model, scheduler, gates, x, y, cfg, seed=0)
    summary = history.summary(window=3)
    assert summary["penalty_last"] < summary["penalty_first"]
    assert gates.attn.abs().sum() > 0 and gates.attn[0].abs().sum() == 0  # step 0 always computes: never trained
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_interrupted_training_resumes_to_the_same_gates(small_dit, tmp_path):
    model, scheduler = small_dit
    x, y = digits()
    cfg = LazyConfig(rho_attn=0.01, rho_mlp=0.01, lr=1e-2, train_iters=6, batch_size=8)
    straight = L2CRouter(4, 2)
    train_gates(model, scheduler, straight, x, y, cfg, seed=1)
    resumed = L2CRouter(4, 2)
    train_gates(model, scheduler, resumed, x, y, LazyConfig(**{**cfg.__dict__, "train_iters": 3}), seed=1,
                checkpoint_dir=tmp_path, save_every=3)
    fresh = L2CRouter(4, 2)  # a new process: everything comes back from the checkpoint
    history = train_gates(model, scheduler, fresh, x, y, cfg, seed=1, checkpoint_dir=tmp_path, save_every=3)
    assert len(history.mse) == 6
    assert torch.allclose(fresh.logits, straight.logits, atol=1e-6)


def test_mismatched_images_and_labels_are_rejected(small_dit):
    model, scheduler = small_dit
    with pytest.raises(InputError, match="DiT expects"):
        train_gates(model, scheduler, LazyGates(4, 2, 16), torch.zeros(4, 1, 16, 16), torch.zeros(4, dtype=torch.long))
    with pytest.raises(InputError, match="labels"):
        train_gates(model, scheduler, LazyGates(4, 2, 16), torch.zeros(4, 1, 8, 8), torch.zeros(3, dtype=torch.long))
