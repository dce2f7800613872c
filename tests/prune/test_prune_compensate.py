"""Compensation (Theorem 3) against an independent KKT solve, Remark 4 and feasible alternatives."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.prune.compensate import CompensationConfig, compensated_weight, compensation_delta, optimal_loss

EXACT = CompensationConfig(damp=0.0)


def _layer(seed: int, n: int = 60, d: int = 9, d_out: int = 5):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ mix  # correlated channels
    w = torch.randn(d, d_out, generator=g, dtype=torch.float64)
    return x, w


def _kkt(x, w, pruned):
    """min ||X dW||^2 s.t. rows `pruned` of W + dW are zero, via the full KKT system (float64)."""
    d, k = w.shape[0], len(pruned)
    m = torch.zeros(d, k, dtype=torch.float64)
    m[pruned, torch.arange(k)] = 1.0
    kkt = torch.zeros(d + k, d + k, dtype=torch.float64)
    kkt[:d, :d] = 2 * x.T @ x
    kkt[:d, d:] = m
    kkt[d:, :d] = m.T
    rhs = torch.cat([torch.zeros(d, w.shape[1], dtype=torch.float64), -w[pruned]])
    return torch.linalg.solve(kkt, rhs)[:d]


def test_compensation_solves_its_least_squares_problem_to_roundoff():
    x, w = _layer(0)
    pruned = torch.tensor([1, 4, 7])
    dw = compensation_delta(x.T @ x, w, pruned, EXACT)
    torch.testing.assert_close(dw, _kkt(x, w, pruned), rtol=1e-9, atol=1e-9)
    assert (w + dw)[pruned].abs().max() < 1e-10  # the constraint of eq. (10)


def test_optimal_loss_matches_remark_4():
    x, w = _layer(1)
    pruned = torch.tensor([0, 3])
    dw = compensation_delta(x.T @ x, w, pruned, EXACT)
    torch.testing.assert_close((x @ dw).pow(2).sum(), optimal_loss(x.T @ x, w, pruned, EXACT), rtol=1e-9, atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1.0))
def test_no_feasible_perturbation_does_better(seed, scale):
    x, w = _layer(seed)
    pruned = torch.tensor([2, 5])
    best = (x @ compensation_delta(x.T @ x, w, pruned, EXACT)).pow(2).sum()
    g = torch.Generator().manual_seed(seed)
    other = compensation_delta(x.T @ x, w, pruned, EXACT) + scale * torch.randn(w.shape, generator=g, dtype=torch.float64)
    other[pruned] = -w[pruned]  # still feasible
    assert (x @ other).pow(2).sum() >= best - 1e-9


def test_compensation_is_exact_when_pruned_channels_are_combinations_of_kept_ones():
    g = torch.Generator().manual_seed(2)
    kept = torch.randn(80, 6, generator=g, dtype=torch.float64)
    x = torch.cat([kept, kept @ torch.randn(6, 2, generator=g, dtype=torch.float64)], dim=1)  # channels 6, 7 redundant
    w = torch.randn(8, 4, generator=g, dtype=torch.float64)
    new = compensated_weight(x.T @ x, w, torch.tensor([6, 7]), CompensationConfig(damp=1e-12))
    torch.testing.assert_close(x @ new, x @ w, rtol=1e-6, atol=1e-6)
    assert torch.all(new[6:] == 0)


def test_compensation_keeps_dtype_and_zeroes_pruned_rows_in_float32():
    x, w = _layer(3)
    new = compensated_weight((x.T @ x), w.float(), torch.tensor([0]))
    assert new.dtype == torch.float32 and torch.all(new[0] == 0)
