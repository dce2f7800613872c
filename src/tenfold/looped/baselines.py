"""The algorithms the looped transformer is measured against, with the same `predict(prompts, T)` interface."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tenfold.looped.reference import gd_predict, least_squares_predict, relative_error
from tenfold.looped.tasks import Prompts


@dataclass(frozen=True)
class GradientDescent:
    """T steps of GD on the in-context least squares, step size eta, from W_0 = 0."""

    eta: float

    def predict(self, p: Prompts, T: int) -> torch.Tensor:
        return gd_predict(p, T, self.eta)


@dataclass(frozen=True)
class PreconditionedGD:
    """T steps of preconditioned GD W <- W - eta grad L(W) Gamma (Gamma = Sigma^{-1} is the ideal one)."""

    eta: float
    preconditioner: torch.Tensor

    def predict(self, p: Prompts, T: int) -> torch.Tensor:
        return gd_predict(p, T, self.eta, self.preconditioner)


@dataclass(frozen=True)
class LeastSquares:
    """The closed-form (minimum-norm) least-squares solution: what GD converges to as T -> inf."""

    def predict(self, p: Prompts, T: int | None = None) -> torch.Tensor:
        return least_squares_predict(p)


def tune_step_size(p: Prompts, T: int, preconditioner: torch.Tensor | None = None,
                   grid: tuple[float, ...] = tuple(2.0 ** (k / 8) for k in range(-48, 17))) -> float:
    """The fixed step size from `grid` (2^-6 .. 4 in steps of 2^(1/8), 9% apart) with the lowest query error on
    prompts `p`: the best T-step GD, tuned as finely as a trained model could tune its step."""
    errs = [relative_error(gd_predict(p, T, eta, preconditioner), p.yq) for eta in grid]
    errs = [e if e == e else float("inf") for e in errs]  # NaN (diverged) never wins
    return grid[min(range(len(grid)), key=errs.__getitem__)]
