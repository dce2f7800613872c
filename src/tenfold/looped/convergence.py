"""What the theory predicts for T-step GD (hence for a looped transformer that implements it), per prompt.

For one prompt, H = X^T X / n. Preconditioned GD W <- W + (1/n) R^T X M (M = eta I is plain GD with step
eta) moves the error E_t = W_t - W* (W* the least-squares solution) by E_{t+1} = E_t (I - H M), so the
error decays as rho(I - H M)^T: the log-error per loop tends to

    log rho(I - H M)  =  log max_i |1 - eta lambda_i(H)|   (plain GD)  ~  log(1 - eta lambda_min)

when eta lambda_max <= 1. The paper (arXiv 2410.11268, abstract/TL;DR: error <= |alpha| exp(-T/(2 kappa)))
states a rate of -1 / (2 kappa) per loop, kappa the condition number of the data; we evaluate it with each
prompt's own kappa = lambda_max(H) / lambda_min(H). With eta = 1/lambda_max GD's rate is
log(1 - 1/kappa) <= -1/kappa, twice as fast as the stated bound: the bound is loose by a factor ~2.

The step that is stable for every prompt of a Gaussian task (top covariance eigenvalue 1, n >= d) is
eta = 1 / (1 + sqrt(d/n))^2: the Marchenko-Pastur upper edge of H's spectrum.
"""

from __future__ import annotations

import math

import torch

from tenfold.core.errors import check
from tenfold.looped.tasks import Prompts


def theory_step_size(d: int, n: int) -> float:
    """eta = 1 / (1 + sqrt(d/n))^2: stable for every prompt w.h.p. (Sigma's top eigenvalue is 1)."""
    check(n >= 1 and d >= 1, f"need n >= 1 and d >= 1, got n={n}, d={d}")
    return 1.0 / (1.0 + math.sqrt(d / n)) ** 2


def prompt_hessians(p: Prompts) -> torch.Tensor:
    """H = X^T X / n per prompt, float64. (B, d, d)"""
    X = p.X.double()
    return X.transpose(1, 2) @ X / X.shape[1]


def iteration_rate(p: Prompts, preconditioner: torch.Tensor) -> torch.Tensor:
    """log rho(I - H M) per prompt: the asymptotic log-error per loop of W <- W + (1/n) R^T X M. (B,)

    M (d, d) is eta * I for plain GD; any M for a trained looped model (see `learned_preconditioner`).
    """
    H = prompt_hessians(p)
    eye = torch.eye(H.shape[-1], dtype=torch.float64)
    rho = torch.linalg.eigvals(eye - H @ preconditioner.double()).abs().amax(-1)
    return rho.log()


def gd_rate(p: Prompts, eta: float) -> torch.Tensor:
    """log max_i |1 - eta lambda_i(H)| per prompt: plain GD's predicted log-error per step. (B,)"""
    lam = torch.linalg.eigvalsh(prompt_hessians(p))
    return (1 - eta * lam).abs().amax(-1).log()


def paper_rate(p: Prompts) -> torch.Tensor:
    """-1 / (2 kappa) per prompt, kappa = lambda_max / lambda_min of H: the stated exp(-T/(2 kappa)) rate. (B,)"""
    lam = torch.linalg.eigvalsh(prompt_hessians(p))
    return -lam[:, 0] / (2 * lam[:, -1])


def log_error_slope(errors: torch.Tensor, Ts: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Least-squares slope of log(error) against T per prompt, over the points where `mask` is set (all by
    default). errors (B, len(Ts)) > 0; returns (B,), NaN where fewer than two points are left."""
    check(errors.shape[1] == len(Ts) and len(Ts) >= 2, "need one error per T and at least two T values")
    w = torch.ones_like(errors, dtype=torch.float64) if mask is None else mask.double()
    y = errors.double().clamp_min(1e-300).log()
    t = Ts.double().expand_as(y)
    count = w.sum(1, keepdim=True)
    t_mean, y_mean = (w * t).sum(1, keepdim=True) / count, (w * y).sum(1, keepdim=True) / count
    slope = (w * (t - t_mean) * (y - y_mean)).sum(1) / (w * (t - t_mean) ** 2).sum(1)
    return torch.where(count[:, 0] >= 2, slope, torch.full_like(slope, float("nan")))
