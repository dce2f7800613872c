"""The Weibull variational family: reparameterised sampling and the analytic Weibull-Gamma KL.

Weibull(k, lam): density k/lam (x/lam)^(k-1) exp(-(x/lam)^k), mean lam * Gamma(1 + 1/k).
"""

from __future__ import annotations

import torch

EULER = 0.5772156649015329
SHAPE_MIN, SHAPE_MAX = 0.1, 1000.0  # clipped shape of the encoder heads (released code)


def weibull_from_uniform(k: torch.Tensor, lam: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The reparameterisation theta = lam * (-ln(1 - eps))^(1/k) of uniforms eps in (0, 1), differentiable in k, lam."""
    return lam * (-torch.log1p(-eps)) ** (1.0 / k)


def weibull_rsample(k: torch.Tensor, lam: torch.Tensor, n: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws of `weibull_from_uniform`, eps ~ U(0, 1), shape (n, *k.shape)."""
    eps = torch.rand((n, *k.shape), generator=generator, dtype=k.dtype, device="cpu").to(k.device)
    return weibull_from_uniform(k, lam, eps.clamp(1e-10, 1 - 1e-7))


def weibull_mean(k: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    return lam * torch.exp(torch.lgamma(1.0 + 1.0 / k))


def kl_weibull_gamma(k: torch.Tensor, lam: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """KL(Weibull(k, lam) || Gamma(alpha, rate beta)), elementwise, closed form (WHAI / WGAE):
    gamma_e alpha / k - alpha ln lam + ln k + beta lam Gamma(1 + 1/k) - gamma_e - 1 - alpha ln beta + ln Gamma(alpha)."""
    alpha = torch.as_tensor(alpha, dtype=k.dtype, device=k.device)
    beta = torch.as_tensor(beta, dtype=k.dtype, device=k.device)
    return (EULER * alpha / k - alpha * torch.log(lam) + torch.log(k) + beta * lam * torch.exp(torch.lgamma(1.0 + 1.0 / k))
            - EULER - 1.0 - alpha * torch.log(beta) + torch.lgamma(alpha))
