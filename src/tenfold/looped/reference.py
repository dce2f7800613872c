"""Float64 references for the in-context least-squares problem L(W) = 1/(2n) sum_i ||W x_i - y_i||^2."""

from __future__ import annotations

import torch

from tenfold.core.errors import check
from tenfold.looped.tasks import Prompts


def gd_weights(p: Prompts, T: int, eta: float, preconditioner: torch.Tensor | None = None) -> torch.Tensor:
    """W_T after T steps of (preconditioned) GD from W_0 = 0: W <- W - eta grad L(W) Gamma. (B, m, d)

    grad L(W) = (1/n) (W X^T - Y^T) X; Gamma = identity for plain GD.
    """
    check(isinstance(T, int) and T >= 1, f"T (number of GD steps / loops) must be an integer >= 1, got {T!r}")
    X, Y = p.X.double(), p.Y.double()
    n = X.shape[1]
    W = torch.zeros(X.shape[0], Y.shape[2], X.shape[2], dtype=torch.float64)
    G = None if preconditioner is None else preconditioner.double()
    for _ in range(T):
        grad = (W @ X.transpose(1, 2) - Y.transpose(1, 2)) @ X / n
        W = W - eta * (grad if G is None else grad @ G)
    return W


def gd_predict(p: Prompts, T: int, eta: float, preconditioner: torch.Tensor | None = None) -> torch.Tensor:
    """Query prediction W_T x_q of T-step GD. (B, m)"""
    return (gd_weights(p, T, eta, preconditioner) @ p.xq.double()[:, :, None])[:, :, 0]


def least_squares_weights(p: Prompts) -> torch.Tensor:
    """The minimum-norm least-squares solution W* = Y^T X (X^T X)^+, where GD from 0 converges. (B, m, d)"""
    X, Y = p.X.double(), p.Y.double()
    if X.shape[1] >= X.shape[2]:
        return torch.linalg.lstsq(X, Y, driver="gelsd").solution.transpose(1, 2)
    return (torch.linalg.pinv(X) @ Y).transpose(1, 2)


def least_squares_predict(p: Prompts) -> torch.Tensor:
    """Query prediction of the minimum-norm least-squares solution. (B, m)"""
    return (least_squares_weights(p) @ p.xq.double()[:, :, None])[:, :, 0]


def empirical_condition(p: Prompts) -> torch.Tensor:
    """Condition number of each prompt's X^T X / n (inf when n < d). (B,)"""
    ev = torch.linalg.eigvalsh(p.X.double().transpose(1, 2) @ p.X.double() / p.X.shape[1])
    inf = torch.full_like(ev[:, 0], float("inf"))
    return torch.where(ev[:, 0] > 1e-12 * ev[:, -1], ev[:, -1] / ev[:, 0], inf)


def relative_error(pred: torch.Tensor, target: torch.Tensor) -> float:
    """sum ||yhat - y||^2 / sum ||y||^2 over the batch: 0 is perfect, 1 is the all-zero predictor."""
    pred, target = pred.double(), target.double()
    return float(((pred - target) ** 2).sum() / (target**2).sum().clamp_min(1e-300))
