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
    assert summary["penalty_init"] == pytest.approx(0.5 * 2 * 2)  # zero init: s = 0.5 for 2 blocks x 2 modules
    assert summary["penalty_last"] < summary["penalty_init"]
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


def _always(keep: bool) -> L2CRouter:
    """A router that computes (s = 1) or reuses (s = 0) every module, exactly."""
    router = L2CRouter(4, 2)
    router.logits.data.fill_(float("inf") if keep else float("-inf"))
    return router


def _reference_rollout_mse(model, scheduler, x0, y, noise, steps: int) -> tuple[float, float]:
    """Independent path: the inference controller in hard mode, every module forced to reuse step 0's output
    for steps 1..steps-1 along the lazy trajectory, against the plain model at the same states (mean
    per-step MSE) and against the plain model's own trajectory from the same state (end-point MSE)."""
    from tenfold.lazydit.dit import LazyController

    scheduler.set_timesteps(steps)
    ts = scheduler.timesteps
    ctl = LazyController(model)
    errors = []
    try:
        with torch.no_grad():
            ctl.mode = "record"
            x = scheduler.add_noise(x0, noise, ts[0].expand(len(x0)))
            x = scheduler.step(model(x, timestep=ts[0].expand(len(x0)), class_labels=y).sample, int(ts[0]), x,
                               eta=0.0).prev_sample
            ctl.mode, x_full = "plain", x
            for t in ts[1:]:
                x_full = scheduler.step(model(x_full, timestep=t.expand(len(x0)), class_labels=y).sample, int(t),
                                        x_full, eta=0.0).prev_sample
            for t in ts[1:]:
                ctl.mode = "plain"
                target = model(x, timestep=t.expand(len(x0)), class_labels=y).sample
                ctl.mode, ctl.force = "hard", {"attn": "reuse", "mlp": "reuse"}
                pred = model(x, timestep=t.expand(len(x0)), class_labels=y).sample
                errors.append(torch.nn.functional.mse_loss(pred, target).item())
                x = scheduler.step(pred, int(t), x, eta=0.0).prev_sample
    finally:
        ctl.detach()
    return sum(errors) / len(errors), torch.nn.functional.mse_loss(x, x_full).item()


def test_whole_trajectory_rollout_matches_inference_reuse(small_dit):
    """rollout = steps - 1: with s = 0 the soft training forward reuses step 0's outputs for the whole
    trajectory, exactly as the inference path does, for both objectives (per-step output MSE and the
    end point against the full trajectory); with s = 1 it is the full model (zero error)."""
    model, scheduler = small_dit
    x, y = digits()
    cfg = LazyConfig(rho_attn=0.0, rho_mlp=0.0, lr=0.0, train_iters=1, batch_size=8, rollout=3)
    assert train_gates(model, scheduler, _always(True), x, y, cfg, seed=2).mse == [0.0]
    history = train_gates(model, scheduler, _always(False), x, y, cfg, seed=2)
    end = LazyConfig(**{**cfg.__dict__, "objective": "sample"})
    assert train_gates(model, scheduler, _always(True), x, y, end, seed=2).mse == [0.0]
    end_history = train_gates(model, scheduler, _always(False), x, y, end, seed=2)
    g = torch.Generator().manual_seed(2)  # replay train_gates' draws: batch, start step (0), noise
    idx = torch.randint(len(x), (8,), generator=g)
    assert int(torch.randint(1, (1,), generator=g)) == 0
    noise = torch.randn(x[idx].shape, generator=g)
    per_step, end_point = _reference_rollout_mse(model, scheduler, x[idx], y[idx], noise, 4)
    assert per_step > 0 and history.mse[0] == pytest.approx(per_step, rel=1e-5)
    assert end_point > 0 and end_history.mse[0] == pytest.approx(end_point, rel=1e-5)


def test_unknown_objective_and_empty_rollout_are_rejected():
    with pytest.raises(InputError, match="objective"):
        LazyConfig(objective="x0")
    with pytest.raises(InputError, match="rollout"):
        LazyConfig(rollout=0)
