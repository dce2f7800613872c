"""Training the lazy learning layers with the DiT frozen (paper Sec. 3.3; the authors' training script).

The paper's objective (`LazyConfig(objective="one-step")`, the authors' `lazy_learning_loss`): draw
clean x_0 and a lazy sampling step j (with the authors' pattern, every other step: their t = 2k + 1,
lazy step t - 1); noise x_0 to step j - 1's timestep; run the full DiT there, recording every
module's output as the cache, and take the DDIM step to x_j; at step j compute the full DiT's output
(the target) and the lazy DiT's output with the soft mix Y = s f(Z) + (1 - s) Y_prev; minimise

    mean (out_lazy - out_full)^2  +  rho_attn sum_l s_attn  +  rho_mlp sum_l s_mlp

over the gate weights only. The target is the full model's output at the same step (all output
channels, learned variance included), as in the authors' script, not the true noise; labels are
dropped to the null class with probability 0.1 in all three forwards, as there.

Ours (`objective="end-point"`, not the paper's): after the recorded step, `window` lazy steps are
rolled out with the soft mix, the cache at each being the lazy model's own output at the step before,
and x following the lazy model's DDIM trajectory; the loss is the squared error of the clean-image
estimate x0_hat at the window's last step against the full model's trajectory from the same state
(with the window reaching the last step, x0_hat is the sample itself), plus the same penalty averaged
over the lazy steps. `checkpointing=True` recomputes each step's activations in the backward pass, so
memory grows with the window by one set of module outputs per step, not one set of activations.

The loop runs through `tenfold.core.accel`: the gates (inside `GateObjective`) are prepared by
accelerate, each process takes its share of the global batch, and only the main process writes
checkpoints. One process draws exactly the batches it drew before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.utils.checkpoint
from torch import nn

from tenfold.core.errors import InputError
from tenfold.core.io import Checkpoint
from tenfold.core.progress import progress
from tenfold.lazydit.dit import LazyController, check_latents, check_scheduler, dit_blocks, split_variance
from tenfold.lazydit.gates import KINDS, LazyConfig, laziness_penalty, lazy_steps


@dataclass
class TrainHistory:
    """Per-iteration losses; `penalty` is the unweighted sum_l s (attn + mlp), comparable across rho.

    `penalty_init` is the first iteration's: with zero-initialised gates, 0.5 x the number of modules.
    """

    mse: list[float] = field(default_factory=list)
    penalty: list[float] = field(default_factory=list)
    keep_rate: list[float] = field(default_factory=list)  # mean s: the soft fraction of modules computed

    def summary(self, window: int = 20) -> dict:
        def mean(xs: list[float]) -> float:
            return sum(xs) / len(xs) if xs else float("nan")

        return {"iters": len(self.mse), "penalty_init": self.penalty[0] if self.penalty else float("nan"),
                "mse_first": mean(self.mse[:window]), "mse_last": mean(self.mse[-window:]),
                "penalty_first": mean(self.penalty[:window]), "penalty_last": mean(self.penalty[-window:]),
                "keep_rate_last": mean(self.keep_rate[-window:])}


def _null_label(model: nn.Module) -> int | None:
    from tenfold.lazydit.dit import null_class

    try:
        return null_class(model)
    except InputError:
        return None


class GateObjective(nn.Module):
    """One iteration's loss as a module, so accelerate/DDP see one forward per backward and average the
    gates' gradients across processes. The DiT is frozen and deliberately not a submodule."""

    def __init__(self, policy: nn.Module, model: nn.Module, scheduler, config: LazyConfig, controller: LazyController):
        super().__init__()
        self.policy = policy
        self.frozen = (model, scheduler, controller)  # a tuple: not registered, never wrapped or synchronised
        self.config = config
        scheduler.set_timesteps(policy.num_steps)
        self.timesteps = scheduler.timesteps.clone()

    def _run(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        model = self.frozen[0]
        return model(x, timestep=self.timesteps[step].to(x.device).expand(len(x)), class_labels=y).sample

    def _ddim(self, out: torch.Tensor, step: int, x: torch.Tensor):
        return self.frozen[1].step(split_variance(out, x.shape[1]), self.timesteps[step], x, eta=0.0)

    def forward(self, x0: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, start: int) -> dict:
        ctl = self.frozen[2]
        ctl.reset()
        with torch.no_grad():  # the recorded step: the full model, its module outputs become the cache
            ctl.mode, ctl.step = "record", start
            x = self.frozen[1].add_noise(x0, noise, self.timesteps[start].to(x0.device).expand(len(x0)))
            x = self._ddim(self._run(x, y, start), start, x).prev_sample
        last = min(start + self.config.window, self.policy.num_steps - 1)
        if self.config.objective == "one-step":
            return self._one_step(x, y, start + 1)
        return self._end_point(x, y, list(range(start + 1, last + 1)))

    def _one_step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> dict:
        ctl = self.frozen[2]
        with torch.no_grad():
            ctl.mode = "plain"
            target = self._run(x, y, step)
        ctl.mode, ctl.step = "soft", step
        ctl.scores = {k: [] for k in KINDS}
        pred = self._run(x, y, step)
        scores = [torch.stack(ctl.scores[k]) for k in KINDS]  # (layers, batch) each
        return self._loss(torch.nn.functional.mse_loss(pred, target), [scores])

    def _end_point(self, x: torch.Tensor, y: torch.Tensor, steps: list[int]) -> dict:
        ctl = self.frozen[2]
        with torch.no_grad():  # the full model's trajectory from the same state
            ctl.mode, x_full = "plain", x
            for j in steps:
                out = self._ddim(self._run(x_full, y, j), j, x_full)
                x_full, x0_full = out.prev_sample, out.pred_original_sample
        keys = sorted(ctl.cache)
        caches = [ctl.cache[k] for k in keys]
        scores = []
        for j in steps:
            if self.config.checkpointing:
                outs = torch.utils.checkpoint.checkpoint(self._lazy_step, j, keys, x, y, *caches, use_reentrant=False)
            else:
                outs = self._lazy_step(j, keys, x, y, *caches)
            x, x0_lazy = outs[0], outs[1]
            caches = list(outs[2: 2 + len(keys)])
            if len(outs) > 2 + len(keys):
                scores.append(list(outs[2 + len(keys):]))
        return self._loss(torch.nn.functional.mse_loss(x0_lazy, x0_full), scores)

    def _lazy_step(self, step: int, keys: list, x: torch.Tensor, y: torch.Tensor, *caches: torch.Tensor) -> tuple:
        """One soft-mixed DDIM step from explicit caches (pure in its tensor inputs, so it can be recomputed)."""
        ctl = self.frozen[2]
        ctl.cache = dict(zip(keys, caches, strict=True))
        ctl.mode, ctl.step = "soft", step
        ctl.scores = {k: [] for k in KINDS}
        out = self._ddim(self._run(x, y, step), step, x)
        scores = [torch.stack(ctl.scores[k]) for k in KINDS] if ctl.scores[KINDS[0]] else []
        return (out.prev_sample, out.pred_original_sample, *[ctl.cache[k] for k in keys], *scores)

    def _loss(self, mse: torch.Tensor, scores: list[list[torch.Tensor]]) -> dict:
        n = max(len(scores), 1)
        lazy = sum(laziness_penalty(a, m, self.config.rho_attn, self.config.rho_mlp) for a, m in scores) / n
        with torch.no_grad():
            penalty = sum(laziness_penalty(a, m, 1.0, 1.0) for a, m in scores) / n
            keep = sum(torch.cat([a, m]).mean() for a, m in scores) / n
        return {"loss": mse + lazy, "mse": mse.detach(), "penalty": torch.as_tensor(penalty),
                "keep": torch.as_tensor(keep)}


def _start_step(config: LazyConfig, steps: int, g: torch.Generator) -> int:
    """The recorded step of one iteration: the step before the first lazy one, drawn uniformly among the
    pattern's lazy steps whose window fits before the end (for "alternate" and window 1, the authors'
    t = randint(0, T/2) * 2 + 1)."""
    lazy = lazy_steps(steps, config.pattern)
    fits = [j for j in lazy if j + config.window - 1 <= steps - 1] or lazy[:1]
    return fits[int(torch.randint(len(fits), (1,), generator=g))] - 1


def train_gates(model: nn.Module, scheduler, policy: nn.Module, x0: torch.Tensor, labels: torch.Tensor,
                config: LazyConfig = LazyConfig(), seed: int = 0, checkpoint_dir: str | os.PathLike | None = None,
                save_every: int = 50) -> TrainHistory:
    """Train `policy` (LazyGates or the L2C router) in place on clean samples `x0` in the DiT's space
    ([-1, 1] pixels, or VAE latents x scaling factor: `LazyDiTPipeline.encode`), (n, C, H, W).

    With `checkpoint_dir`, progress is saved every `save_every` iterations and a rerun resumes.
    """
    from tenfold.core.accel import accelerator, local_slice

    check_scheduler(scheduler)
    check_latents(x0, model)
    if len(x0) != len(labels):
        raise InputError(f"{len(x0)} images but {len(labels)} labels: they must match one to one")
    steps = policy.num_steps
    if steps < 2:
        raise InputError(f"gates need at least 2 DDIM steps to learn reuse, got {steps}")
    if policy.num_layers != len(dit_blocks(model)):
        raise InputError(f"the gates have {policy.num_layers} layers but the DiT has {len(dit_blocks(model))} blocks")
    trained = lazy_steps(steps, config.pattern)
    if not all(policy.is_active(j) for j in trained):
        raise InputError(f"pattern {config.pattern!r} trains steps {trained}, but the gates are not active on all of "
                         "them: build the gates with the same pattern (LazyGates.for_model(model, steps, pattern))")
    null = _null_label(model) if config.label_dropout > 0 else None
    acc = accelerator()
    model.requires_grad_(False)
    model.eval().to(acc.device)
    policy.to(acc.device)
    opt = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    history = TrainHistory()
    ckpt = Checkpoint(checkpoint_dir, "gates-train") if checkpoint_dir is not None else None
    start_iter = 0
    if ckpt is not None and ckpt.exists():
        state = ckpt.load()
        try:
            policy.load_state_dict(state["policy"])
            opt.load_state_dict(state["opt"])
            g.set_state(state["rng"])
            history = TrainHistory(**state["history"])
            start_iter = int(state["iter"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise InputError(f"the checkpoint in {checkpoint_dir} does not belong to these gates (another model, step "
                             "count or policy): delete it or choose another checkpoint folder") from err
    mine = local_slice(torch.arange(config.batch_size), acc)  # this process's rows of every global batch
    ctl = LazyController(model, policy, config.threshold)
    try:
        objective, opt = acc.prepare(GateObjective(policy, model, scheduler, config, ctl), opt)
        for it in progress(range(start_iter, config.train_iters), desc="lazy gates",
                           total=config.train_iters - start_iter):
            idx = torch.randint(len(x0), (config.batch_size,), generator=g)
            start = _start_step(config, steps, g)
            noise = torch.randn((config.batch_size, *x0.shape[1:]), generator=g)
            y = labels[idx]
            if null is not None:
                drop = torch.rand(config.batch_size, generator=g) < config.label_dropout
                y = torch.where(drop, torch.full_like(y, null), y)
            out = objective(x0[idx][mine].to(acc.device), y[mine].to(acc.device), noise[mine].to(acc.device), start)
            opt.zero_grad()
            acc.backward(out["loss"])
            opt.step()
            logged = {k: acc.reduce(out[k].detach().float().reshape(1).to(acc.device), reduction="mean").item()
                      for k in ("mse", "penalty", "keep")}
            history.mse.append(logged["mse"])
            history.penalty.append(logged["penalty"])
            history.keep_rate.append(logged["keep"])
            if ckpt is not None and (it + 1) % save_every == 0 and it + 1 < config.train_iters:
                ckpt.save({"iter": it + 1, "policy": policy.state_dict(), "opt": opt.state_dict(), "rng": g.get_state(),
                           "history": {"mse": history.mse, "penalty": history.penalty, "keep_rate": history.keep_rate}})
    finally:
        ctl.detach()
    return history
