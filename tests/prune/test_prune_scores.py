"""The numerical score (Algorithm 1) against closed forms, autograd and brute-force removal."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.prune.scores import NumericalConfig, head_scores, mask_hessian, numerical_objective, numerical_score


def _problem(seed: int, n: int = 40, d: int = 10, d_out: int = 6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.2, 2.0, d, dtype=torch.float64)
    w = torch.randn(d, d_out, generator=g, dtype=torch.float64)
    return x, w


def test_newton_score_is_the_exact_minimiser_of_eq3():
    x, w = _problem(0)
    ratio, cfg = 0.3, NumericalConfig(iterations=3, lam=0.5)
    z = numerical_score(x.T @ x, w, ratio, cfg)
    hl = mask_hessian(x.T @ x, w)
    lam = cfg.lam * hl.diagonal().mean()
    d = hl.shape[0]
    ones = torch.ones(d, dtype=torch.float64)
    # stationarity of the quadratic: (H_l + lam 11^T) z = H_l 1 + lam r 1
    closed = torch.linalg.solve(hl + lam, hl @ ones + lam * (1 - ratio) * d * ones)
    torch.testing.assert_close(z, closed, rtol=1e-9, atol=1e-9)


def test_gradient_and_hessian_of_eq6_match_autograd():
    x, w = _problem(1)
    ratio, lam = 0.4, 0.7
    d = w.shape[0]
    z0 = torch.rand(d, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def objective(z):  # eq. (3) written out column by column, independent of mask_hessian
        err = sum(((x @ w[:, i]) - x @ (z * w[:, i])).pow(2).sum() for i in range(w.shape[1]))
        return 0.5 * err + 0.5 * lam * (z.sum() - (1 - ratio) * d) ** 2

    grad = torch.autograd.functional.jacobian(objective, z0)
    hess = torch.autograd.functional.hessian(objective, z0)
    hl = (w @ w.T) * (x.T @ x)
    ones = torch.ones(d, dtype=torch.float64)
    torch.testing.assert_close(grad, hl @ (z0 - ones) + lam * (z0.sum() - (1 - ratio) * d) * ones)
    torch.testing.assert_close(hess, hl + lam * torch.ones(d, d, dtype=torch.float64))
    torch.testing.assert_close(numerical_objective(x.T @ x, w, z0, ratio, lam), objective(z0))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), ratio=st.floats(0.05, 0.9))
def test_newton_result_does_not_depend_on_the_initial_point(seed, ratio):
    x, w = _problem(seed)
    z0 = torch.rand(w.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    a = numerical_score(x.T @ x, w, ratio)
    b = numerical_score(x.T @ x, w, ratio, z0=z0)
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)


def test_score_orders_channels_by_error_when_inputs_are_decorrelated():
    """With orthogonal input channels, eq. (3) decouples: the lowest score is the smallest ||X_j W_j||^2."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(50, 8, generator=g, dtype=torch.float64))
    x = q * torch.linspace(0.5, 3.0, 8, dtype=torch.float64)
    w = torch.randn(8, 5, generator=g, dtype=torch.float64)
    z = numerical_score(x.T @ x, w, 0.5)
    err = (x.T @ x).diagonal() * (w**2).sum(1)
    assert torch.equal(z.argsort(), err.argsort())


def test_head_scores_are_the_mean_of_their_channels_eq7():
    z = torch.arange(12, dtype=torch.float64)
    torch.testing.assert_close(head_scores(z, 4), torch.tensor([1.5, 5.5, 9.5], dtype=torch.float64))


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra @ rb) / (ra.norm() * rb.norm()))


@torch.no_grad()
def test_score_ranks_mlp_channels_like_removing_each_one(tiny_lm):
    """Brute force: remove each MLP channel of layer 0 and measure the LM loss; the score must agree.

    The paper's score minimises the layer's output error (eq. 2), a proxy for the model loss, so we
    ask for a clearly positive rank correlation with the measured loss increase (Spearman > 0.3)
    and a strong one with the exact layer error of each removal (Spearman > 0.6).
    """
    from tenfold.prune.calibration import collect
    from tenfold.prune.surgery import blocks, out_weight

    model = copy.deepcopy(tiny_lm[0]).eval()
    g = torch.Generator().manual_seed(0)
    calib = torch.randint(0, model.config.vocab_size, (8, 32), generator=g)
    bl = blocks(model)
    stats = collect(model, bl, [0], calib)[(0, "mlp")]
    w = out_weight(bl[0].mlp_out).detach().double()
    z = numerical_score(stats.gram, w, 0.3)
    layer_err = stats.gram.diagonal() * (w**2).sum(1)
    base = model(input_ids=calib, labels=calib).loss.item()
    down = bl[0].mlp_out.weight
    n = 48  # a sample of channels keeps the test fast
    idx = torch.randperm(len(z), generator=g)[:n]
    loss_up = []
    for j in idx.tolist():
        saved = down[:, j].clone()
        down[:, j] = 0
        loss_up.append(model(input_ids=calib, labels=calib).loss.item() - base)
        down[:, j] = saved
    assert _spearman(z[idx], torch.tensor(loss_up, dtype=torch.float64)) > 0.3
    assert _spearman(z, layer_err) > 0.6
