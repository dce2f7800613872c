"""Fitter, planner and transfer tests: recovery of known laws, the Chinchilla replication, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.plmscale import (
    ExtrapolationWarning,
    ParametricLaw,
    effectively_transferred_tokens,
    fit_isoflop,
    fit_parametric,
    fit_transfer_law,
    load_runs,
    paper_coefficients,
    plan,
)
from tenfold.plmscale.experiment import synthetic_runs
from tenfold.plmscale.fit import _objective

CHINCHILLA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chinchilla_fig4_extracted.csv"
TRUE = ParametricLaw(E=1.8, A=400.0, B=900.0, alpha=0.34, beta=0.30)


def test_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    logN, logD = rng.uniform(15, 22, 30), rng.uniform(20, 26, 30)
    logL = np.log(TRUE.loss(np.exp(logN), np.exp(logD))) + rng.normal(0, 0.01, 30)
    theta = np.array([5.5, 6.5, 0.5, 0.3, 0.35])
    _, grad = _objective(theta, logN, logD, logL, 1e-3)
    num = np.array([(_objective(theta + h, logN, logD, logL, 1e-3)[0] - _objective(theta - h, logN, logD, logL, 1e-3)[0])
                    / 2e-6 for h in np.eye(5) * 1e-6])
    np.testing.assert_allclose(grad, num, rtol=1e-4, atol=1e-8)


def test_parametric_fit_recovers_noiseless_law():
    runs = synthetic_runs(TRUE, np.logspace(18, 21, 5), 6, noise=0.0, seed=0)
    law = fit_parametric(runs, top_starts=5).law
    assert law.alpha == pytest.approx(TRUE.alpha, abs=2e-3)
    assert law.beta == pytest.approx(TRUE.beta, abs=2e-3)
    assert law.E == pytest.approx(TRUE.E, rel=1e-2)
    assert law.a == pytest.approx(TRUE.a, abs=2e-3)


def test_closed_form_optimum_minimises_loss_on_the_isoflop_line():
    c = 1e21
    n_opt, d_opt = TRUE.optimal(c)
    assert 6 * n_opt * d_opt == pytest.approx(c, rel=1e-9)
    grid = n_opt * np.logspace(-1, 1, 2001)
    assert grid[np.argmin(TRUE.loss(grid, c / (6 * grid)))] == pytest.approx(n_opt, rel=5e-3)


def test_isoflop_fit_recovers_allocation_exponent_of_known_law():
    runs = synthetic_runs(TRUE, np.logspace(18, 21, 4), 9, noise=0.0, seed=0)
    iso = fit_isoflop(runs)
    assert iso.a == pytest.approx(TRUE.a, abs=0.02)
    assert iso.a + iso.b == pytest.approx(1.0, abs=1e-9)  # D = C / 6N ties the exponents


@pytest.mark.skipif(not CHINCHILLA.is_file(), reason=f"Epoch's Chinchilla extraction not found at {CHINCHILLA} "
                    "(it lives in ../shared/data beside the repository)")
def test_chinchilla_replication_fit_matches_besiroglu_et_al():
    runs = load_runs(CHINCHILLA, drop_highest_loss=5)
    assert len(runs) == 240
    law = fit_parametric(runs, top_starts=3).law
    assert law.alpha == pytest.approx(0.3478, abs=3e-3)
    assert law.beta == pytest.approx(0.3658, abs=5e-3)
    assert law.E == pytest.approx(1.817, abs=0.01)
    assert law.A == pytest.approx(482.0, rel=0.05)
    assert law.B == pytest.approx(2085.4, rel=0.06)  # B is weakly identified (published SE 1293)


def test_planner_reproduces_paper_isoflop_predictions():
    paper = paper_coefficients()
    for obj, n_expected in (("clm", 1.73e9), ("mlm", 1.22e9)):  # paper-law sizes at 1e21 (released minima 1.785B, 1.209B)
        p = plan(1e21, obj)
        law = paper[obj]["isoflop"]
        assert p.params == pytest.approx(law["k_n"] * 1e21 ** law["a"], rel=1e-12)
        assert p.params == pytest.approx(n_expected, rel=0.02)
        assert 6 * p.params * p.tokens == pytest.approx(1e21, rel=0.1)


def test_planner_warns_outside_fitted_range():
    with pytest.warns(ExtrapolationWarning):
        assert plan(1e25, "clm").extrapolated


def test_planner_uses_user_fit_with_intervals():
    runs = synthetic_runs(TRUE, np.logspace(18, 21, 4), 7, noise=0.003, seed=1)
    from tenfold.plmscale import bootstrap_isoflop

    iso = fit_isoflop(runs)
    bootstrap_isoflop(runs, iso, n_boot=50, seed=0)
    p = plan(1e20, "clm", iso.to_dict())
    assert p.params_interval[0] <= p.params <= p.params_interval[1]


@settings(max_examples=20, deadline=None)
@given(k=st.floats(0.5, 5.0), p=st.floats(-0.3, -0.05), shift=st.floats(1.2, 4.0))
def test_transferred_tokens_recover_a_known_shift(k, p, shift):
    """A transferred curve equal to the scratch curve at `shift` times the tokens has D_t = (shift - 1) D_f."""
    d = np.logspace(6, 9, 40)
    scratch = k * d**p
    d_f = np.logspace(6.5, 8, 10)
    d_t = effectively_transferred_tokens(d_f, k * (shift * d_f) ** p, d, scratch)
    np.testing.assert_allclose(d_t, (shift - 1) * d_f, rtol=1e-6)


def test_transfer_law_fit_recovers_exponents():
    d_f, n = np.meshgrid(np.logspace(6, 9, 6), np.logspace(6, 9, 4))
    d_t = 3.0 * d_f**0.2 * n**0.4
    law = fit_transfer_law(d_f.ravel(), n.ravel(), d_t.ravel())
    assert (law.k, law.alpha, law.beta) == pytest.approx((3.0, 0.2, 0.4), rel=1e-8)


def test_bad_input_errors():
    with pytest.raises(InputError, match="only 3 runs"):
        fit_parametric(pd.DataFrame({"params": [1e6, 2e6, 3e6], "tokens": [1e9] * 3, "loss": [3.0, 2.9, 2.8]}))
    with pytest.raises(InputError, match="finite and positive"):
        load_runs(pd.DataFrame({"params": [1e6, -1.0], "tokens": [1e9, 1e9], "loss": [3.0, 2.9]}))
    with pytest.raises(InputError, match="lacks columns"):
        load_runs(pd.DataFrame({"params": [1e6], "loss": [3.0]}))
    with pytest.raises(InputError, match="objective"):
        plan(1e21, "glm")
