"""The numerical score (Shen et al., AAAI 2025, arXiv 2412.12441, Sec. 3.2-3.3, Algorithm 1).

For an output projection X·W (X: (N, D) calibration inputs, W: (D, D')), a relaxed mask z in R^D
minimises
    1/2 sum_i ||X W_{*,i} - X (z o W_{*,i})||^2 + 1/2 lambda (<1_D, z> - r)^2,   r = (1 - rho) D   (eq. 3-5)
with Newton's method. The gradient and Hessian are (eq. 6, Algorithm 1 lines 4-9)
    g = ((W W^T) o (X^T X)) (z - 1_D) + lambda (<1_D, z> - r) 1_D
    H = (W W^T) o (X^T X) + lambda 1_{DxD}
and z_{t+1} = z_t - H^{-1} g. Channels with a low z are pruned. Heads average their channels'
scores (eq. 7); global ranking multiplies head scores by alpha = 4 D_h / 3 (eq. 8), which we write
as (parameters in one head) / (parameters in one MLP channel) so it also holds for GQA, OPT, GPT-2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class NumericalConfig:
    """Settings of the score. The paper gives T "typically around 50" (Sec. 3.2) and no lambda value."""

    iterations: int = 50  # T of Algorithm 1
    lam: float = 1.0  # lambda, in units of mean(diag(H_l)) so it is scale-free (our choice; not in the paper)
    damp: float = 1e-6  # relative ridge added to H_l only if it is singular (cf. Remark 5)
    clip: bool = False  # ours, not the paper's: clip z to the relaxed mask's range [0, 1] before eq. (7)


def mask_hessian(gram: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """H_l = (W W^T) o (X^T X), float64; `gram` is X^T X (D, D), `w` is W (D, D')."""
    w = w.to(torch.float64)
    return (w @ w.T) * gram.to(torch.float64)


def numerical_score(gram: torch.Tensor, w: torch.Tensor, ratio: float,
                    config: NumericalConfig = NumericalConfig(), z0: torch.Tensor | None = None) -> torch.Tensor:
    """Algorithm 1: the Newton-method numerical score z (D,) of the input channels of X·W."""
    hl = mask_hessian(gram, w)
    d = hl.shape[0]
    ones = torch.ones(d, dtype=torch.float64, device=hl.device)
    lam = config.lam * hl.diagonal().mean().clamp_min(torch.finfo(torch.float64).tiny)
    r = (1.0 - ratio) * d
    h = hl + lam  # H = H_l + lambda 1_{DxD}
    chol, info = torch.linalg.cholesky_ex(h)
    if info.item() != 0:  # singular H_l (fewer tokens than channels): Remark 5's dampening
        h = h + config.damp * hl.diagonal().mean() * torch.eye(d, dtype=h.dtype, device=h.device)
        chol = torch.linalg.cholesky(h)
    z = ones.clone() if z0 is None else z0.to(torch.float64).clone()
    for _ in range(config.iterations):
        g = hl @ (z - ones) + lam * (z.sum() - r) * ones  # eq. (6)
        z = z - torch.cholesky_solve(g.unsqueeze(1), chol).squeeze(1)  # Newton step
    return z.clamp(0.0, 1.0) if config.clip else z


def head_scores(channel_scores: torch.Tensor, width: int) -> torch.Tensor:
    """Eq. (7): the score of a head (or GQA group) is the mean of its `width` channel scores."""
    return channel_scores.view(-1, width).mean(dim=1)


def numerical_objective(gram: torch.Tensor, w: torch.Tensor, z: torch.Tensor, ratio: float, lam: float) -> torch.Tensor:
    """The objective of eq. (3) at z (float64), for tests and diagnostics."""
    hl = mask_hessian(gram, w)
    e = z.to(torch.float64) - 1.0
    r = (1.0 - ratio) * hl.shape[0]
    return 0.5 * e @ hl @ e + 0.5 * lam * (z.sum() - r) ** 2
