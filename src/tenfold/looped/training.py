"""Learning the looped transformer's weights from prompts: Adam on the query loss, through `core.accel`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tenfold.core.accel import accelerator, local_slice
from tenfold.core.errors import check
from tenfold.core.progress import progress
from tenfold.looped.tasks import Prompts, TaskConfig, embed, sample_prompts


@dataclass(frozen=True)
class TrainConfig:
    """Adam on E||yhat_q - W x_q||^2 / E||W x_q||^2 with fresh prompts every step (our choice of budget)."""

    steps: int = 400
    batch: int = 256
    lr: float = 1e-2
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.steps >= 1 and self.batch >= 1, f"steps and batch must be >= 1, got {self.steps}, {self.batch}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")


def train_seed(cfg: TrainConfig, step: int) -> int:
    """The prompt seed of a training step: a stream no evaluation seed (small integers) ever uses."""
    return 1_000_003 * (cfg.seed + 1) + step


def train_model(model: torch.nn.Module, task: TaskConfig, T: int, cfg: TrainConfig = TrainConfig(),
                desc: str = "train") -> list[float]:
    """Fit a looped `model` (forward(Z_0, T) -> Z_T) on prompts of `task`; returns the loss curve.

    Under `accelerate launch` each process takes its slice of every step's global batch of prompts.
    """
    check(isinstance(T, int) and T >= 1, f"T (number of loops) must be an integer >= 1, got {T!r}")
    acc = accelerator()
    dtype = next(model.parameters()).dtype
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    wrapped, opt = acc.prepare(model, opt)
    losses = []
    for step in progress(range(cfg.steps), desc=desc):
        p = sample_prompts(cfg.batch, task, seed=train_seed(cfg, step), dtype=dtype)
        rows = local_slice(torch.arange(cfg.batch), acc)
        mine = Prompts(p.X[rows], p.Y[rows], p.xq[rows], p.yq[rows], p.W[rows])
        pred = -wrapped(embed(mine).to(acc.device), T)[:, -mine.Y.shape[2]:, -1]  # through the wrapper: DDP syncs
        # the global batch's loss: each process's share over the global denominator, times the processes
        # because data-parallel training averages the processes' gradients
        loss = ((pred - mine.yq.to(acc.device)) ** 2).sum() / (p.yq**2).sum() * acc.num_processes
        acc.backward(loss)
        acc.unscale_gradients()  # fp16 mixed precision: unscale before clipping (a no-op otherwise); accelerate's
        torch.nn.utils.clip_grad_norm_(wrapped.parameters(), cfg.grad_clip)  # own clip costs ~20% of a tiny step
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses
