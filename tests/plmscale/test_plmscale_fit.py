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
    runs = synthetic_runs(TRUE, np.logspace(18, 21, 4), 9, noise=0.0, seed=0)  # N_opt on the grid: raw is exact
    for method in ("raw", "parabola"):
        iso = fit_isoflop(runs, method=method)
        assert iso.a == pytest.approx(TRUE.a, abs=0.02)
        assert iso.a + iso.b == pytest.approx(1.0, abs=1e-6)  # D = C / 6N here, though b is fitted on its own


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


# ---- the paper's estimators and table format ------------------------------------------------------------------

def _paper_format_table(path, exponents: dict, seed: int = 0) -> None:
    """A file in the released isoflop_points.csv format whose per-budget raw minima follow N_opt = k C^a exactly
    (the minimum is on the grid, flanked by worse sizes on a lopsided profile), 7 budgets 1e18..1e21."""
    rng = np.random.default_rng(seed)
    lines = ["objective,budget_flops,model_size_label,N_params,final_validation_loss"]
    for obj, a in exponents.items():
        for c in (1e18, 3e18, 1e19, 3e19, 1e20, 3e20, 1e21):
            n_opt = 3e7 * (c / 1e18) ** a
            for f in (0.3, 0.55, 1.0, 1.4, 2.5, 4.0):  # lopsided grid: the parabola's vertex is not the raw minimum
                n = round(n_opt * f)
                loss = 2.5 - 0.03 * np.log10(c) + 0.02 * np.log(f) ** 2 + 0.004 * np.log(f) ** 3 + rng.uniform(0, 1e-4)
                lines.append(f"{obj.upper()},{c:.0e},{n / 1e6:.0f}M,{n},{loss:.5f}")
    path.write_text("\n".join(lines) + "\n")


def test_raw_estimator_gives_the_exponents_of_a_paper_format_table(tmp_path):
    from tenfold.plmscale.fit import load_paper_isoflop_table

    path = tmp_path / "isoflop_points.csv"
    _paper_format_table(path, {"clm": 0.578, "mlm": 0.776})
    for obj, a in (("clm", 0.578), ("mlm", 0.776)):
        runs = load_paper_isoflop_table(path, obj)
        assert len(runs) == 42 and set(runs["budget"]) == {1e18, 3e18, 1e19, 3e19, 1e20, 3e20, 1e21}
        np.testing.assert_allclose(runs["tokens"], runs["flops"] / (6 * runs["params"]))
        raw, para = fit_isoflop(runs, method="raw"), fit_isoflop(runs, method="parabola")
        assert raw.a == pytest.approx(a, abs=0.01)
        # on lopsided profiles the parabola's vertex is not the lowest run (here by the same factor at every budget)
        assert all(abs(p["n_opt"] / r["n_opt"] - 1) > 0.05 for p, r in zip(para.budgets, raw.budgets, strict=True))
        assert raw.b == pytest.approx(1 - a, abs=0.01)  # D = C / 6N in the paper's table


def test_paper_table_loader_refuses_bad_files(tmp_path):
    from tenfold.plmscale.fit import load_paper_isoflop_table

    bad = tmp_path / "bad.csv"
    bad.write_text("objective,budget_flops,N_params\nCLM,1e18,6291456\n")
    with pytest.raises(InputError, match="lacks columns"):
        load_paper_isoflop_table(bad, "clm")
    path = tmp_path / "t.csv"
    _paper_format_table(path, {"clm": 0.5})
    with pytest.raises(InputError, match="no rows for objective"):
        load_paper_isoflop_table(path, "mlm")
    with pytest.raises(InputError, match="does not exist"):
        load_paper_isoflop_table(tmp_path / "missing.csv", "clm")


def test_raw_minimum_is_the_lowest_run_and_the_parabola_its_vertex():
    from tenfold.plmscale.fit import isoflop_minimum

    n = np.array([1e6, 2e6, 4e6, 8e6, 16e6])
    loss = 3.0 + 0.1 * (np.log(n) - np.log(5e6)) ** 2
    assert isoflop_minimum(n, loss, "raw")[0] == 4e6
    assert isoflop_minimum(n, loss, "parabola")[0] == pytest.approx(5e6, rel=1e-6)
    with pytest.raises(InputError, match="raw, parabola"):
        isoflop_minimum(n, loss, "vertex")


def test_d_opt_is_fitted_on_its_own_and_both_flop_counts_are_reported():
    """Runs whose tokens are not C / 6N (an exact-count sweep): b comes from the minima's tokens, and a is
    reported against both the exact count (the budget) and 6ND of the same minimum runs."""
    rows = []
    for c in (1e10, 3e10, 1e11):
        for n in (300.0, 600.0, 1200.0, 2400.0):
            per_token = 6 * (n + 3000.0)  # a fixed extra cost per token, like attention at tiny sizes
            d = c / per_token
            n_opt = 600 * (c / 1e10) ** 0.5
            rows.append({"params": n, "tokens": d, "flops": c, "budget": c, "flops_exact": c, "flops_6nd": 6 * n * d,
                         "loss": 3.0 + 0.01 * np.log(n / n_opt) ** 2})
    iso = fit_isoflop(pd.DataFrame(rows), method="raw")
    mins = [(g["n_opt"], g["d_opt"]) for g in iso.budgets]
    assert [m[0] for m in mins] == [600.0, 1200.0, 2400.0]
    expect_b = np.polyfit(np.log([1e10, 3e10, 1e11]), np.log([m[1] for m in mins]), 1)[0]
    assert iso.b == pytest.approx(expect_b) and iso.a + iso.b != pytest.approx(1.0, abs=0.05)
    expect_a6 = np.polyfit(np.log([6 * n * d for n, d in mins]), np.log([m[0] for m in mins]), 1)[0]
    assert iso.by_count["6nd"]["a"] == pytest.approx(expect_a6) and iso.by_count["exact"]["a"] == pytest.approx(iso.a)


def test_paper_init_and_multi_start_are_both_reported():
    from tenfold.plmscale.fit import PAPER_INIT, fit_parametric_both

    runs = synthetic_runs(TRUE, np.logspace(18, 21, 4), 6, noise=0.003, seed=2)
    both = fit_parametric_both(runs, top_starts=5)
    assert set(both) == {"paper_init", "multi_start"} and both["paper_init"].starts == 1
    assert both["multi_start"].objective <= both["paper_init"].objective + 1e-12
    assert list(PAPER_INIT) == [5.0, 10.0, 1.0, 0.5, 0.5]  # p0 = [e, a, b, alpha, beta] = [1, 5, 10, .5, .5]


# ---- repeated data ----------------------------------------------------------------------------------------------

def test_data_constrained_law_recovers_r_star_from_repeated_runs():
    from tenfold.plmscale.fit import effective_tokens, fit_data_constrained

    rows = []
    for c in np.logspace(17, 20, 5):
        for n in np.logspace(6.5, 9, 8):
            d = c / (6 * n)
            rows.append({"params": n, "tokens": d, "unique_tokens": 2e8,
                         "loss": float(TRUE.loss(n, effective_tokens(d, 2e8, 10.0)))})
    fit = fit_data_constrained(pd.DataFrame(rows), top_starts=5)
    assert fit.law.r_star == pytest.approx(10.0, rel=1e-3) and fit.law.law.beta == pytest.approx(TRUE.beta, rel=1e-3)
    assert fit.repeated_runs > 5 and fit.objective < fit.plain_objective


def test_effective_tokens_closed_form():
    from tenfold.plmscale.fit import effective_tokens

    assert effective_tokens(50.0, 100.0, 15.4) == 50.0  # within the first epoch nothing changes
    assert effective_tokens(200.0, 100.0, 15.4) == pytest.approx(100 + 100 * 15.4 * (1 - np.exp(-1 / 15.4)))
    assert effective_tokens(1e9, 100.0, 15.4) == pytest.approx(100 * (1 + 15.4))  # repeated data saturates


def test_data_constrained_law_refuses_single_epoch_runs():
    from tenfold.plmscale.fit import fit_data_constrained

    runs = synthetic_runs(TRUE, np.logspace(18, 21, 4), 6, noise=0.0, seed=0).assign(unique_tokens=1e15)
    with pytest.raises(InputError, match="no run repeats"):
        fit_data_constrained(runs)


# ---- the compute-split planner ----------------------------------------------------------------------------------

def _split_fit(law):
    return {"law": "transfer_split", "transfer": law,
            "sizes": {"1000": {"hidden": 8, "layers": 1, "scratch": {"k": 5.0, "p": -0.05}, "flops_per_token": 1e4}}}


def test_compute_split_matches_a_brute_force_search():
    from tenfold.plmscale.plan import plan_compute_split

    law = {"k": 0.5, "alpha": 0.6, "beta": 0.1, "gamma": 0.5}
    c = 1e4 * 1e7  # 1e7 tokens at 1e4 FLOPs per token
    split = plan_compute_split(c, _split_fit(law))
    shares = np.linspace(0, 0.999, 100001)
    d_f, d_c = (1 - shares) * 1e7, shares * 1e7
    loss = 5.0 * (d_f + 0.5 * d_f**0.6 * 1000**0.1 * d_c**0.5) ** -0.05
    assert split.clm_share == pytest.approx(shares[np.argmin(loss)], abs=2e-3)
    assert split.loss <= split.scratch_loss and split.clm_tokens + split.mlm_tokens == pytest.approx(1e7)
    assert split.paper["clm_share_range"] == [0.10, 0.20]


def test_compute_split_without_a_transfer_law_spends_nothing_on_clm():
    from tenfold.plmscale.plan import plan_compute_split

    split = plan_compute_split(1e11, {**_split_fit(None), "transfer_error": "only 2 of 16 checkpoints have D_t > 0"})
    assert split.clm_share == 0.0 and split.loss == split.scratch_loss and "D_t > 0" in split.reason
    with pytest.raises(InputError, match="not a size"):
        plan_compute_split(1e11, _split_fit(None), params=5e3)


def test_transfer_law_with_clm_amounts_recovers_gamma():
    d_f, n, d_c = (g.ravel() for g in np.meshgrid(np.logspace(5, 7, 4), [1e3, 4e3], [1e5, 1e6]))
    law = fit_transfer_law(d_f, n, 2.0 * d_f**0.3 * n**0.2 * d_c**0.4, d_c)
    assert (law.k, law.alpha, law.beta, law.gamma) == pytest.approx((2.0, 0.3, 0.2, 0.4), rel=1e-8)
