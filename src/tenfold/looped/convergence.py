"""What the theory predicts for T-step GD (hence for the constructed looped transformer).

For x_i ~ N(0, Sigma) with eigenvalues in [1/kappa, 1] and n >= d, the eigenvalues of X^T X / n lie
(asymptotically, Marchenko-Pastur edges) in [(1/kappa)(1 - sqrt(d/n))^2, (1 + sqrt(d/n))^2]. A fixed step
eta = 1 / (1 + sqrt(d/n))^2 is then stable for every prompt, and each step contracts the parameter error
by at most 1 - eta * lambda_min <= exp(-1 / kappa_eff), with

    kappa_eff = kappa * ((1 + sqrt(d/n)) / (1 - sqrt(d/n)))^2,

so ||W_T - W*|| / ||W*|| <= exp(-T / kappa_eff). The paper's statement has the form
|alpha| exp(-T / (2 kappa)) (arXiv 2410.11268, abstract/TL;DR); we use exp(-T / (2 kappa_eff)) as the
stated threshold, the factor 2 leaving room for finite-n fluctuation around the asymptotic edges.
kappa_eff stays O(kappa) as long as n >= c d for a constant c > 1: n = O(d) examples suffice.
"""

from __future__ import annotations

import math

from tenfold.core.errors import check


def theory_step_size(d: int, n: int) -> float:
    """eta = 1 / (1 + sqrt(d/n))^2: stable for every prompt w.h.p. (Sigma's top eigenvalue is 1)."""
    check(n >= 1 and d >= 1, f"need n >= 1 and d >= 1, got n={n}, d={d}")
    return 1.0 / (1.0 + math.sqrt(d / n)) ** 2


def effective_condition(d: int, n: int, kappa: float) -> float:
    """kappa_eff = kappa ((1 + sqrt(d/n)) / (1 - sqrt(d/n)))^2, inf when n <= d."""
    check(kappa >= 1, f"kappa (condition number) must be >= 1, got {kappa}")
    r = math.sqrt(d / n)
    return math.inf if r >= 1 else kappa * ((1 + r) / (1 - r)) ** 2


def error_threshold(T: int, d: int, n: int, kappa: float) -> float:
    """exp(-T / (2 kappa_eff)): the relative parameter error the theory allows after T loops."""
    check(T >= 1, f"T (number of loops) must be >= 1, got {T}")
    k = effective_condition(d, n, kappa)
    return 1.0 if math.isinf(k) else math.exp(-T / (2 * k))
