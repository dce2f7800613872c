"""Training the lazy learning layers with the DiT frozen (paper Sec. 3.3; the authors' training script).

One iteration: draw clean images x_0 and a DDIM step index i; noise x_0 to the step's timestep;
run the full DiT at step i, recording every module's output as the cache, and take the DDIM step to
x_{i+1}; at step i+1 compute the full DiT's prediction (the target) and the lazy DiT's prediction
with the soft mix Y = s f(Z) + (1 - s) Y_prev; minimise

    || eps_lazy - eps_full ||^2  +  rho_attn sum_l s_attn  +  rho_mlp sum_l s_mlp

over the gate weights only. The authors' script uses the full model's output at the same step as the
target of the mean-squared term (rather than the true noise); we follow the script.

`LazyConfig.rollout = K > 1` extends this to K consecutive lazy steps after the recorded one: the cache
at step j is the lazy model's own (soft) output at step j - 1, as in Y_t = s f(Z_t) + (1 - s) Y_{t-1}
read recursively, and x follows the lazy model's DDIM trajectory. The loss is the mean over the K
steps of the same MSE (against the full model's prediction at the same x) plus the penalty. This is
what inference does, where a module can be reused for many steps in a row; with K = 1 the gates only
ever see a one-step-old cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from tenfold.core.errors import InputError
from tenfold.core.io import Checkpoint
from tenfold.core.progress import progress
from tenfold.lazydit.dit import LazyController, check_images, check_scheduler
from tenfold.lazydit.gates import KINDS, LazyConfig, laziness_penalty


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


def train_gates(model: torch.nn.Module, scheduler, policy: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                config: LazyConfig = LazyConfig(), seed: int = 0, checkpoint_dir: str | os.PathLike | None = None,
                save_every: int = 50) -> TrainHistory:
    """Train `policy` (LazyGates or the L2C router) in place; `images` in [-1, 1], (n, C, H, W).

    With `checkpoint_dir`, progress is saved every `save_every` iterations and a rerun resumes.
    """
    check_scheduler(scheduler)
    check_images(images, model)
    if len(images) != len(labels):
        raise InputError(f"{len(images)} images but {len(labels)} labels: they must match one to one")
    steps = policy.num_steps
    if steps < 2:
        raise InputError(f"gates need at least 2 DDIM steps to learn reuse, got {steps}")
    rollout = min(config.rollout, steps - 1)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    opt = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    history = TrainHistory()
    ckpt = Checkpoint(checkpoint_dir, "gates-train") if checkpoint_dir is not None else None
    start = 0
    if ckpt is not None and ckpt.exists():
        state = ckpt.load()
        policy.load_state_dict(state["policy"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["rng"])
        history = TrainHistory(**state["history"])
        start = int(state["iter"])
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    device = next(model.parameters()).device
    ctl = LazyController(model, policy, config.threshold)
    try:
        for it in progress(range(start, config.train_iters), desc="lazy gates", total=config.train_iters - start):
            idx = torch.randint(len(images), (config.batch_size,), generator=g)
            x0, y = images[idx].to(device), labels[idx].to(device)
            i = int(torch.randint(steps - rollout, (1,), generator=g))
            noise = torch.randn(x0.shape, generator=g).to(device)
            t = timesteps[i].to(device)
            ctl.reset()
            with torch.no_grad():  # step i: the full model, its module outputs become the cache
                ctl.mode, ctl.step = "record", i
                x = scheduler.add_noise(x0, noise, t.expand(len(x0)))
                eps = model(x, timestep=t.expand(len(x0)), class_labels=y).sample
                x = scheduler.step(eps, int(t), x, eta=0.0).prev_sample
            if config.objective == "sample":  # the full model's trajectory from the same state
                with torch.no_grad():
                    ctl.mode, x_full = "plain", x
                    for j in range(i + 1, i + 1 + rollout):
                        t = timesteps[j].to(device)
                        eps = model(x_full, timestep=t.expand(len(x0)), class_labels=y).sample
                        x_full = scheduler.step(eps, int(t), x_full, eta=0.0).prev_sample
            mse = lazy = 0.0
            penalty = keep = 0.0  # unweighted sum_l s and mean s, for the history
            for j in range(i + 1, i + 1 + rollout):
                t = timesteps[j].to(device)
                if config.objective == "eps":
                    with torch.no_grad():
                        ctl.mode = "plain"
                        target = model(x, timestep=t.expand(len(x0)), class_labels=y).sample
                ctl.mode, ctl.step = "soft", j
                ctl.scores = {k: [] for k in KINDS}
                pred = model(x, timestep=t.expand(len(x0)), class_labels=y).sample
                s_attn, s_mlp = (torch.stack(ctl.scores[k]) for k in KINDS)  # (layers, batch)
                lazy = lazy + laziness_penalty(s_attn, s_mlp, config.rho_attn, config.rho_mlp) / rollout
                penalty += laziness_penalty(s_attn, s_mlp, 1.0, 1.0).item() / rollout
                keep += torch.cat([s_attn, s_mlp]).mean().item() / rollout
                if config.objective == "eps":
                    mse = mse + torch.nn.functional.mse_loss(pred, target) / rollout
                    if j < i + rollout:  # follow the lazy model's own trajectory
                        x = scheduler.step(pred.detach(), int(t), x, eta=0.0).prev_sample
                else:  # the trajectory stays in the graph: errors are judged where they end up
                    x = scheduler.step(pred, int(t), x, eta=0.0).prev_sample
            if config.objective == "sample":
                mse = torch.nn.functional.mse_loss(x, x_full)
            loss = mse + lazy
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.mse.append(mse.item())
            history.penalty.append(penalty)
            history.keep_rate.append(keep)
            if ckpt is not None and (it + 1) % save_every == 0:
                ckpt.save({"iter": it + 1, "policy": policy.state_dict(), "opt": opt.state_dict(), "rng": g.get_state(),
                           "history": {"mse": history.mse, "penalty": history.penalty, "keep_rate": history.keep_rate}})
    finally:
        ctl.detach()
    return history
