"""Learning the looped (or multi-layer) transformer's weights from prompts: Adam on the query loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tenfold.core.errors import check
from tenfold.core.progress import progress
from tenfold.looped.tasks import TaskConfig, sample_prompts


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


def train_model(model: torch.nn.Module, task: TaskConfig, T: int, cfg: TrainConfig = TrainConfig(),
                desc: str = "train") -> list[float]:
    """Fit `model` (anything with `.predict(prompts, T)`) on prompts of `task`; returns the loss curve."""
    check(isinstance(T, int) and T >= 1, f"T (number of loops) must be an integer >= 1, got {T!r}")
    dtype = next(model.parameters()).dtype
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    losses = []
    for step in progress(range(cfg.steps), desc=desc):
        p = sample_prompts(cfg.batch, task, seed=1_000_003 * (cfg.seed + 1) + step, dtype=dtype)
        pred = model.predict(p, T)
        loss = ((pred - p.yq) ** 2).sum() / (p.yq**2).sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses

