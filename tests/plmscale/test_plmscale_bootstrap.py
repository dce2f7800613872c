"""Bootstrap intervals of the parametric fit: refits converge, and 95% intervals cover known laws.

The regression these guard against: with scipy's default L-BFGS-B tolerances on the raw Huber sum
(~1e-4), refits warm-started at the full-data optimum stopped ~10 iterations in, so the bootstrap
spread of a was ~10x too small and the intervals missed the truth.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from tenfold.core.errors import InputError
from tenfold.plmscale.experiment import RECOVERY_NAMES, recovery, synthetic_runs
from tenfold.plmscale.fit import (
    ParametricLaw,
    _objective,
    _theta,
    bootstrap_interval,
    bootstrap_samples,
    fit_parametric,
    jackknife_samples,
)
from tenfold.plmscale.plan import paper_coefficients

PAPER_CLM = ParametricLaw(**paper_coefficients()["clm"]["parametric"])


def _runs(seed: int, noise: float = 0.005):
    return synthetic_runs(PAPER_CLM, np.logspace(17, 20, 7), 7, noise, seed)


def test_warm_started_refit_reaches_the_tightly_converged_optimum():
    """Property: a refit started at another data set's optimum ends where a cold, tight-tolerance
    minimisation of the raw objective ends (it does not stop where it started)."""
    full = fit_parametric(_runs(0), top_starts=10)
    boot = _runs(0).iloc[np.random.default_rng(1).integers(0, 49, 49)]
    warm = fit_parametric(boot, top_starts=0, init=_theta(full.law)).law
    logN, logD, logL = (np.log(boot[c].to_numpy()) for c in ("params", "tokens", "loss"))
    ref = minimize(_objective, _theta(PAPER_CLM), args=(logN, logD, logL, 1e-3), jac=True, method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000, "maxfun": 50000}).x
    assert warm.alpha == pytest.approx(ref[3], abs=2e-4)
    assert warm.beta == pytest.approx(ref[4], abs=2e-4)
    assert abs(warm.a - full.law.a) > 1e-3  # the resample's optimum really differs from the start


def test_bootstrap_spread_matches_the_sampling_spread_of_the_estimator():
    """Property: the bootstrap sd of a is of the order of a's sd across independent data sets
    (it was 10x too small before the fix)."""
    fits = [fit_parametric(_runs(100 + k), top_starts=5).law.a for k in range(12)]
    runs = _runs(100)
    samples = bootstrap_samples(runs, fit_parametric(runs, top_starts=5), n_boot=40, seed=0, top_starts=0)
    ratio = samples[:, 5].std() / np.std(fits, ddof=1)
    assert 0.4 < ratio < 3.0


def test_percentile_intervals_cover_known_coefficients_fast():
    """Coverage over 6 independent synthetic sweeps x (a, b, alpha, beta, E): at least 85% inside."""
    rec = recovery(seed=7, n_datasets=6, n_boot=30)
    assert rec["coverage_all"] >= 0.85
    for n in RECOVERY_NAMES:
        lo, hi = rec["first_dataset"]["intervals"][n]
        assert lo <= rec["first_dataset"]["fit"][n] <= hi


@pytest.mark.slow
def test_percentile_intervals_cover_known_coefficients_at_nominal_rate():
    """Coverage over 60 sweeps x 100 resamples: each coefficient's 95% interval covers >= 88% of the time."""
    rec = recovery(seed=3, n_datasets=60, n_boot=100)
    for n in RECOVERY_NAMES:
        assert rec["coverage"][n] >= 0.88, (n, rec["coverage"])


def test_interval_methods_agree_with_hand_computation():
    rng = np.random.default_rng(0)
    samples = rng.normal(1.0, 0.1, 4000)
    lo, hi = np.quantile(samples, [0.025, 0.975])
    assert bootstrap_interval(1.0, samples, method="percentile") == pytest.approx([lo, hi])
    assert bootstrap_interval(1.1, samples, method="basic") == pytest.approx([2.2 - hi, 2.2 - lo])
    # symmetric replicates centred on the estimate and a symmetric jackknife: BCa = percentile
    jack = np.concatenate([np.linspace(-1, 1, 21)])
    assert bootstrap_interval(float(np.median(samples)), samples, method="bca", jackknife=jack) == \
        pytest.approx([lo, hi], abs=5e-3)
    # an estimate above most replicates (median bias) shifts the BCa interval up
    shifted = bootstrap_interval(1.05, samples, method="bca", jackknife=jack)
    assert shifted[0] > lo and shifted[1] > hi
    with pytest.raises(InputError, match="interval method"):
        bootstrap_interval(1.0, samples, method="normal")
    with pytest.raises(InputError, match="jackknife"):
        bootstrap_interval(1.0, samples, method="bca")


def test_jackknife_leaves_each_run_out_once():
    runs = _runs(0)
    full = fit_parametric(runs, top_starts=5)
    jack = jackknife_samples(runs, full)
    assert jack.shape == (49, 7)
    assert np.all(np.abs(jack[:, 3] - full.law.alpha) < 0.05)


def test_bootstrap_intervals_do_not_depend_on_row_order():
    """Property: a shuffled runs table gives the same seeded intervals (a resumed sweep's CSV order varies)."""
    from tenfold.plmscale import bootstrap_isoflop, fit_isoflop

    runs = _runs(0)
    shuffled = runs.sample(frac=1.0, random_state=3).reset_index(drop=True)
    ivs = [bootstrap_isoflop(r, fit_isoflop(r), n_boot=30, seed=0) for r in (runs, shuffled)]
    assert ivs[0] == ivs[1]
    fit = fit_parametric(runs, top_starts=3)
    s1, s2 = (bootstrap_samples(r, fit, n_boot=5, seed=0, top_starts=0) for r in (runs, shuffled))
    np.testing.assert_allclose(s1, s2, rtol=1e-6)
