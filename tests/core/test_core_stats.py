"""Intervals: coverage against known truths, closed forms, and nulls that must not look like effects."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.core.results import Claim
from tenfold.core.stats import Interval, one_sample, paired_bootstrap, proportion_interval, seed_interval


def _claim(iv: Interval, better: str = "higher") -> Claim:
    return Claim("c", "s", iv.estimate, 0.0, better=better, interval=tuple(iv.bounds()), evidence=iv.evidence)


def test_paired_bootstrap_covers_a_known_mean_difference_about_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(60):
        base = rng.normal(0, 1, 200)  # shared unit effect: pairing removes it
        ours, ref = base + 0.1 + rng.normal(0, 0.3, 200), base + rng.normal(0, 0.3, 200)
        iv = paired_bootstrap(ours, ref, n_resamples=500, seed=int(rng.integers(1 << 30)))
        hits += iv.lo <= 0.1 <= iv.hi
    assert 51 <= hits <= 60  # 95% nominal; binomial(60, .95) is >= 52 with probability ~0.99


def test_pairing_makes_a_small_consistent_gain_visible():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 300)
    iv = paired_bootstrap(base + 0.05, base, unit="list")
    assert iv.lo > 0 and iv.evidence == "paired bootstrap over 300 lists"
    assert iv.estimate == pytest.approx(0.05)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 60))
def test_the_reference_against_itself_never_holds(seed, n):
    x = np.random.default_rng(seed).normal(size=n)
    iv = paired_bootstrap(x, x)
    assert iv.lo == iv.hi == 0.0
    assert _claim(iv).verdict == "inconclusive" and _claim(iv, "lower").verdict == "inconclusive"


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_shuffled_labels_give_an_interval_around_zero_for_a_ratio_statistic(seed):
    rng = np.random.default_rng(seed)
    units = rng.normal(size=(200, 2)) + [0, 5]
    other = units[rng.permutation(200)]  # same distribution, no real effect
    iv = paired_bootstrap(units, other, statistic=lambda m: m[:, 0].sum() / m[:, 1].sum(), n_resamples=500)
    assert iv.lo < iv.estimate < iv.hi
    assert abs(iv.estimate) < (iv.hi - iv.lo) * 3


def test_matrix_statistic_resamples_whole_units():
    # perplexity-style: per window (nll sum, tokens); the statistic is a ratio of sums, not a mean
    rng = np.random.default_rng(2)
    toks = rng.integers(50, 150, 100).astype(float)
    ours = np.c_[toks * 3.0 + rng.normal(0, 2, 100), toks]
    ref = np.c_[toks * 3.1 + rng.normal(0, 2, 100), toks]
    ppl = lambda m: float(np.exp(m[:, 0].sum() / m[:, 1].sum()))  # noqa: E731
    iv = paired_bootstrap(ours, ref, statistic=ppl, unit="window")
    assert iv.estimate == pytest.approx(ppl(ours) - ppl(ref))
    assert iv.hi < 0  # ours is lower on every window


def test_one_sample_against_a_threshold_and_a_null_that_sits_on_it():
    rng = np.random.default_rng(3)
    assert one_sample(rng.normal(0.5, 0.1, 100), 0.3).lo > 0
    at = one_sample(rng.normal(0.3, 0.1, 100), 0.3)
    assert at.lo < 0 < at.hi
    const = one_sample(np.full(10, 0.3), 0.3)
    assert const.lo == const.hi == 0.0


def test_seed_interval_equals_the_paired_t_closed_form():
    from scipy.stats import t

    a, b = np.array([1.0, 2.0, 3.5, 2.2]), np.array([0.5, 1.4, 2.6, 2.0])
    d = a - b
    half = t.ppf(0.975, 3) * d.std(ddof=1) / np.sqrt(4)
    iv = seed_interval(a, b)
    assert (iv.lo, iv.hi) == pytest.approx((d.mean() - half, d.mean() + half))
    assert iv.seeds == 4 and "4 seeds" in iv.evidence
    same = seed_interval(a, a)
    assert same.lo == same.hi == 0.0
    with pytest.raises(InputError, match="at least 2"):
        seed_interval([1.0], [2.0])


def test_proportion_interval_is_clopper_pearson_minus_the_reference():
    from scipy.stats import beta

    iv = proportion_interval(60, 100, 0.5)
    assert iv.lo == pytest.approx(beta.ppf(0.025, 60, 41) - 0.5)
    assert iv.hi == pytest.approx(beta.ppf(0.975, 61, 40) - 0.5)
    assert proportion_interval(50, 100, 0.5).lo < 0  # chance is not above chance


@pytest.mark.parametrize("ours,ref,why", [
    ([1.0], [1.0], "at least 2"),
    ([1.0, 2.0, 3.0], [1.0, 2.0], "same units"),
    ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0], "non-finite"),
])
def test_bad_unit_arrays_are_clear_errors(ours, ref, why):
    with pytest.raises(InputError, match=why):
        paired_bootstrap(ours, ref)


def test_seeds_that_all_agree_need_an_exact_sign_test_to_hold():
    from tenfold.core.stats import seed_interval

    few = seed_interval([3.0, 3.0, 3.0], [1.0, 1.0, 1.0])  # 3 of 3 agree: one-sided p = 0.125
    assert (few.lo, few.hi) == (0.0, 2.0) and few.estimate == 2.0 and "sign test" in few.evidence
    many = seed_interval([3.0] * 6, [1.0] * 6)  # 6 of 6: two-sided p = 0.031
    assert (many.lo, many.hi) == (2.0, 2.0)
    same = seed_interval([1.0] * 3, [1.0] * 3)
    assert (same.lo, same.hi) == (0.0, 0.0)
