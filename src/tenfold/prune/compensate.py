"""Compensation of the pruned output projections (Shen et al., AAAI 2025, Sec. 3.4, eq. 9-12).

Removing the rows p_1..p_k of W (D, D') in X·W is followed by the change dW solving
    min ||X dW||^2   s.t.  M_p^T dW + W_p = 0                                    (eq. 10)
whose closed form is (Theorem 3, eq. 11)
    dW* = -(2 X^T X)^{-1} M_p (M_p^T (2 X^T X)^{-1} M_p)^{-1} M_p^T W,
with (2 X^T X + gamma I) in place of 2 X^T X when X^T X is singular (Remark 5). The pruned rows of
W + dW* are exactly zero; the kept rows absorb what the pruned ones carried. Only output projections
(o_proj, down_proj) are compensated: a removed column of q/k/v/gate/up has no kept column that could
reproduce it (Sec. 3.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CompensationConfig:
    damp: float = 0.01  # gamma of Remark 5, relative to mean(diag(2 X^T X)); value not given in the paper


def compensation_delta(gram: torch.Tensor, w: torch.Tensor, pruned: torch.Tensor,
                       config: CompensationConfig = CompensationConfig()) -> torch.Tensor:
    """Eq. (11): dW* (D, D') for removing rows `pruned` of W (D, D'), given gram = X^T X (D, D)."""
    w64 = w.to(torch.float64)
    a = 2.0 * gram.to(torch.float64)
    d = a.shape[0]
    a = a + config.damp * a.diagonal().mean() * torch.eye(d, dtype=a.dtype, device=a.device)
    a_inv = torch.cholesky_inverse(torch.linalg.cholesky(a))
    pruned = torch.as_tensor(pruned, dtype=torch.long, device=a.device)
    a_inv_mp = a_inv[:, pruned]  # (2 X^T X)^{-1} M_p   (D, k)
    inner = a_inv[pruned][:, pruned]  # M_p^T (2 X^T X)^{-1} M_p   (k, k)
    rhs = w64[pruned]  # M_p^T W = W_p   (k, D')
    return -(a_inv_mp @ torch.linalg.solve(inner, rhs))


def compensated_weight(gram: torch.Tensor, w: torch.Tensor, pruned: torch.Tensor,
                       config: CompensationConfig = CompensationConfig()) -> torch.Tensor:
    """W + dW* in W's dtype, with the pruned rows set to exactly zero."""
    out = w.to(torch.float64) + compensation_delta(gram, w, pruned, config)
    out[torch.as_tensor(pruned, dtype=torch.long, device=out.device)] = 0.0
    return out.to(w.dtype)


def optimal_loss(gram: torch.Tensor, w: torch.Tensor, pruned: torch.Tensor,
                 config: CompensationConfig = CompensationConfig()) -> torch.Tensor:
    """Remark 4, eq. (12): the loss ||X dW*||^2 reached by the optimum (float64)."""
    a = 2.0 * gram.to(torch.float64)
    a = a + config.damp * a.diagonal().mean() * torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    a_inv = torch.linalg.inv(a)
    pruned = torch.as_tensor(pruned, dtype=torch.long)
    wp = w.to(torch.float64)[pruned]
    return 0.5 * torch.trace(wp.T @ torch.linalg.solve(a_inv[pruned][:, pruned], wp))
