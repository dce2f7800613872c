"""Gate training: the authors' step pattern, only the gates move, the end-point objective equals the
inference path's reuse, gradient checkpointing changes nothing, and an interrupted run resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.lazydit.baselines import L2CRouter
from tenfold.lazydit.gates import LazyConfig, LazyGates, lazy_steps
from tenfold.lazydit.train import GateObjective, _start_step, train_gates


def digits():
    from tenfold.data.images import load_digits

    train, _ = load_digits(8).split(0.2, seed=0)
    return train.images[:200] * 2 - 1, train.labels[:200]


def test_paper_recipe_trains_only_every_other_step_and_leaves_the_dit_frozen(small_dit):
    model, scheduler = small_dit
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = digits()
    gates = LazyGates.for_model(model, 6)
    cfg = LazyConfig(rho_attn=0.05, rho_mlp=0.05, lr=5e-2, train_iters=12, batch_size=16)
    summary = train_gates(model, scheduler, gates, x, y, cfg, seed=0).summary(window=3)
    assert summary["penalty_init"] == pytest.approx(0.5 * 2 * 2)  # zero init: s = 0.5 for 2 blocks x 2 modules
    assert summary["penalty_last"] < summary["penalty_init"]
    moved = [step for step in range(6) if gates.attn[step].abs().sum() > 0]
    assert moved and set(moved) <= {5, 3, 1}  # the lazy steps t - 1 of the authors' t = 2k + 1
    assert all(gates.attn[step].abs().sum() == 0 for step in (0, 2, 4))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_recorded_step_is_drawn_as_the_authors_draw_it():
    g = torch.Generator().manual_seed(0)
    one_step = LazyConfig()
    starts = {_start_step(one_step, 20, g) for _ in range(400)}
    assert starts == {j - 1 for j in lazy_steps(20, "alternate")} == set(range(0, 19, 2))
    window = LazyConfig(objective="end-point", pattern="every", window=19)
    assert {_start_step(window, 20, g) for _ in range(20)} == {0}  # the whole trajectory from the first step


def test_gates_without_the_patterns_steps_are_refused(small_dit):
    model, scheduler = small_dit
    x, y = digits()
    with pytest.raises(InputError, match="same pattern"):
        train_gates(model, scheduler, LazyGates.for_model(model, 4, "alternate"), x, y,
                    LazyConfig(objective="end-point", pattern="every", window=2, train_iters=1))


def test_interrupted_training_resumes_to_the_same_gates(small_dit, tmp_path):
    model, scheduler = small_dit
    x, y = digits()
    cfg = LazyConfig(rho_attn=0.01, rho_mlp=0.01, lr=1e-2, train_iters=6, batch_size=8)
    straight = L2CRouter(4, 2)
    train_gates(model, scheduler, straight, x, y, cfg, seed=1)
    resumed = L2CRouter(4, 2)
    train_gates(model, scheduler, resumed, x, y, LazyConfig(**{**cfg.__dict__, "train_iters": 4}), seed=1,
                checkpoint_dir=tmp_path, save_every=3)
    fresh = L2CRouter(4, 2)  # a new process: everything comes back from the checkpoint (saved at iteration 3)
    history = train_gates(model, scheduler, fresh, x, y, cfg, seed=1, checkpoint_dir=tmp_path, save_every=3)
    assert len(history.mse) == 6
    assert torch.allclose(fresh.logits, straight.logits, atol=1e-6)


def test_mismatched_images_and_labels_are_rejected(small_dit):
    model, scheduler = small_dit
    with pytest.raises(InputError, match="DiT expects"):
        train_gates(model, scheduler, LazyGates(4, 2, 16), torch.zeros(4, 1, 16, 16), torch.zeros(4, dtype=torch.long))
    with pytest.raises(InputError, match="labels"):
        train_gates(model, scheduler, LazyGates(4, 2, 16), torch.zeros(4, 1, 8, 8), torch.zeros(3, dtype=torch.long))


def _always(keep: bool, steps: int = 4) -> L2CRouter:
    """A router that computes (s = 1) or reuses (s = 0) every module, exactly."""
    router = L2CRouter(steps, 2)
    router.logits.data.fill_(float("inf") if keep else float("-inf"))
    return router


def _reference_reuse(model, scheduler, x0, y, noise, steps: int) -> tuple[float, float]:
    """Independent path: the inference controller in hard mode, every module forced to reuse step 0's output
    for steps 1..steps-1 along the lazy trajectory. Returns the one-step output MSE at step 1 against the plain
    model, and the end-point error: the clean-image estimate at the last step against the plain trajectory's."""
    from tenfold.lazydit.dit import LazyController

    scheduler.set_timesteps(steps)
    ts = scheduler.timesteps
    ctl = LazyController(model)
    n = len(x0)
    try:
        with torch.no_grad():
            ctl.mode = "record"
            x = scheduler.add_noise(x0, noise, ts[0].expand(n))
            x = scheduler.step(model(x, timestep=ts[0].expand(n), class_labels=y).sample, int(ts[0]), x, eta=0.0).prev_sample
            ctl.mode, x_full = "plain", x
            for t in ts[1:]:
                out = scheduler.step(model(x_full, timestep=t.expand(n), class_labels=y).sample, int(t), x_full, eta=0.0)
                x_full, x0_full = out.prev_sample, out.pred_original_sample
            target = model(x, timestep=ts[1].expand(n), class_labels=y).sample
            ctl.mode, ctl.force = "hard", {"attn": "reuse", "mlp": "reuse"}
            one_step = torch.nn.functional.mse_loss(model(x, timestep=ts[1].expand(n), class_labels=y).sample, target)
            for t in ts[1:]:
                out = scheduler.step(model(x, timestep=t.expand(n), class_labels=y).sample, int(t), x, eta=0.0)
                x, x0_lazy = out.prev_sample, out.pred_original_sample
    finally:
        ctl.detach()
    return one_step.item(), torch.nn.functional.mse_loss(x0_lazy, x0_full).item()


def test_both_objectives_equal_the_inference_paths_reuse(small_dit):
    """With s = 0 the soft training forward reuses the recorded outputs exactly as inference does: the
    one-step loss (window 1 from step 0) and the end-point loss over the whole trajectory; with s = 1 it is
    the full model (zero error)."""
    model, scheduler = small_dit
    x, y = digits()
    end = LazyConfig(rho_attn=0.0, rho_mlp=0.0, lr=0.0, train_iters=1, batch_size=8, objective="end-point",
                     pattern="every", window=3, label_dropout=0.0)
    assert train_gates(model, scheduler, _always(True), x, y, end, seed=2).mse == [0.0]
    end_point = train_gates(model, scheduler, _always(False), x, y, end, seed=2).mse[0]
    g = torch.Generator().manual_seed(2)  # replay train_gates' draws: batch, start step (0), noise
    idx = torch.randint(len(x), (8,), generator=g)
    assert _start_step(end, 4, g) == 0
    noise = torch.randn(x[idx].shape, generator=g)
    one_ref, end_ref = _reference_reuse(model, scheduler, x[idx], y[idx], noise, 4)
    assert end_ref > 0 and end_point == pytest.approx(end_ref, rel=1e-5)
    objective = GateObjective(_always(False), model, scheduler, LazyConfig(pattern="every", label_dropout=0.0), None)
    from tenfold.lazydit.dit import LazyController

    objective.frozen = (model, scheduler, LazyController(model, objective.policy))
    try:
        out = objective(x[idx], y[idx], noise, 0)
    finally:
        objective.frozen[2].detach()
    assert out["mse"].item() == pytest.approx(one_ref, rel=1e-5) and one_ref > 0


def test_gradient_checkpointing_gives_the_same_gradients(small_dit):
    model, scheduler = small_dit
    x, y = digits()
    grads = []
    for checkpointing in (False, True):
        gates = LazyGates.for_model(model, 5, "every")
        with torch.no_grad():
            gates.attn.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
        cfg = LazyConfig(rho_attn=1e-3, rho_mlp=1e-3, objective="end-point", pattern="every", window=4,
                         checkpointing=checkpointing, label_dropout=0.0)
        from tenfold.lazydit.dit import LazyController

        ctl = LazyController(model, gates)
        try:
            out = GateObjective(gates, model, scheduler, cfg, ctl)(x[:6], y[:6], torch.randn(6, 1, 8, 8,
                                                                  generator=torch.Generator().manual_seed(1)), 0)
            out["loss"].backward()
        finally:
            ctl.detach()
        grads.append((out["loss"].item(), gates.attn.grad.clone(), gates.mlp.grad.clone()))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    assert grads[0][1].abs().sum() > 0
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-9)
    assert torch.allclose(grads[0][2], grads[1][2], rtol=1e-4, atol=1e-9)


def test_training_on_latents_of_a_dit_with_learned_variance(small_pipeline):
    from tenfold.lazydit.dit import LazyDiTPipeline

    pipe = LazyDiTPipeline.from_pipe(small_pipeline)
    x0 = pipe.encode(torch.rand(8, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    gates = LazyGates.for_model(pipe.transformer, 4)
    for cfg in (LazyConfig(rho_attn=1e-2, rho_mlp=1e-2, lr=1e-2, train_iters=2, batch_size=4),
                LazyConfig(rho_attn=1e-2, rho_mlp=1e-2, lr=1e-2, train_iters=2, batch_size=4, objective="end-point",
                           window=3, checkpointing=True)):
        history = train_gates(pipe.transformer, pipe.scheduler, gates, x0, torch.tensor([1, 5] * 4), cfg)
        assert len(history.mse) == 2 and all(m > 0 for m in history.mse)


@pytest.mark.slow
def test_two_cpu_processes_train_the_same_gates_as_one(tmp_path, one_and_two_processes):
    script = Path(__file__).parent / "scripts" / "ddp_gates.py"
    one, two = one_and_two_processes(script, suffix=".safetensors")
    a, b = LazyGates.load(one), LazyGates.load(two)
    assert a.attn.abs().sum() > 0
    assert torch.allclose(a.attn, b.attn, atol=1e-6) and torch.allclose(a.mlp, b.mlp, atol=1e-6)
