"""Intervals for claims: the 95% interval of ours - reference, and a line saying how it was made.

Every helper returns an `Interval`, which `Result.claim(..., interval=...)` takes as it is. All the
resampling is `scipy.stats`' (`bootstrap`, `ttest_rel`, `binomtest`); this module only decides what
is resampled (test units, seeds) and words the evidence line.

- `paired_bootstrap`: both sides measured on the same test units (lists, users, authors, images,
  formulas, windows); units are resampled together, so the interval is of the paired difference.
  A side may be a matrix (units x columns: labels and scores, per-seed values, numerator and
  denominator) with a `statistic` that turns it into one number (an AUC, a perplexity).
- `one_sample`: ours on test units against a fixed reference value (a stated threshold).
- `seed_interval`: one number per seed and side; paired t interval over seeds.
- `proportion_interval`: k successes of n against a fixed rate (exact binomial interval).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tenfold.core.errors import InputError

CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A `confidence` interval [lo, hi] of ours - reference; `estimate` is the plug-in difference."""

    lo: float
    hi: float
    estimate: float
    evidence: str
    units: int | None = None
    seeds: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            raise InputError(f"interval bounds must be finite, got [{self.lo}, {self.hi}]")
        if self.lo > self.hi:
            raise InputError(f"interval lower bound {self.lo} is above its upper bound {self.hi}")

    def bounds(self) -> list[float]:
        return [float(self.lo), float(self.hi)]


def _units(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim not in (1, 2) or a.shape[0] < 2:
        raise InputError(f"{name} must hold at least 2 test units along its first axis, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} has non-finite values: drop or fix those units before making an interval")
    return a


def _mean(a: np.ndarray) -> float:
    return float(a.mean()) if a.ndim == 1 else float(a.mean(axis=0).mean())


def _wording(units: int, unit: str, seeds: int | None, how: str) -> str:
    per = f" x {seeds} seeds" if seeds and seeds > 1 else ""
    return f"{how} over {units:,} {unit}s{per}"


def _bootstrap(data: tuple[np.ndarray, ...], statistic, vectorized: bool, seed: int, n_resamples: int,
               confidence: float) -> tuple[float, float]:
    """scipy's paired bootstrap (BCa, falling back to percentile where BCa is undefined)."""
    from scipy.stats import bootstrap

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bootstrap(data, statistic, paired=True, vectorized=vectorized, n_resamples=n_resamples,
                            confidence_level=confidence, method=method, random_state=np.random.default_rng(seed))
        lo, hi = res.confidence_interval
        if math.isfinite(lo) and math.isfinite(hi):
            return float(lo), float(hi)
    return math.nan, math.nan


def paired_bootstrap(ours, reference, *, statistic: Callable[[np.ndarray], float] | None = None,
                     unit: str = "test unit", seeds: int | None = None, n_resamples: int = RESAMPLES,
                     confidence: float = CONFIDENCE, seed: int = 0) -> Interval:
    """Interval of statistic(ours) - statistic(reference), resampling test units (rows) jointly.

    `ours[i]` and `reference[i]` must be the same test unit. `statistic` maps a (units,) or
    (units, columns) array to one number (default: the mean, averaged over columns, e.g. seeds).
    """
    a, b = _units(ours, "ours"), _units(reference, "reference")
    if a.shape[0] != b.shape[0]:
        raise InputError(f"ours has {a.shape[0]} test units but reference has {b.shape[0]}: a paired interval "
                         "needs both measured on the same units")
    stat = statistic or _mean
    # the mean of differences, not the difference of means: equal sides give exactly 0, not round-off
    estimate = float(stat(a) - stat(b)) if statistic else _mean(a - b)
    n = a.shape[0]
    evidence = _wording(n, unit, seeds, "paired bootstrap")
    if np.array_equal(a, b):  # identical sides: the difference is exactly zero on every resample
        return Interval(estimate, estimate, estimate, evidence, n, seeds)
    if statistic is None and a.ndim == 1 and b.ndim == 1:
        lo, hi = _bootstrap((a - b,), lambda d, axis: d.mean(axis), True, seed, n_resamples, confidence)
    else:
        index = np.arange(n, dtype=float)  # resampling row indices resamples whole units of both sides
        lo, hi = _bootstrap((index,), lambda i: stat(a[i.astype(int)]) - stat(b[i.astype(int)]), False, seed,
                            n_resamples, confidence)
    if not math.isfinite(lo):
        lo = hi = estimate  # every resample gave the same difference
    return Interval(min(lo, estimate), max(hi, estimate), estimate, evidence, n, seeds)


def one_sample(values, reference_value: float, *, statistic: Callable[[np.ndarray], float] | None = None,
               unit: str = "test unit", seeds: int | None = None, n_resamples: int = RESAMPLES,
               confidence: float = CONFIDENCE, seed: int = 0) -> Interval:
    """Interval of statistic(values) - reference_value (a fixed threshold), resampling the units."""
    a = _units(values, "values")
    stat = statistic or _mean
    ref = float(reference_value)
    estimate = float(stat(a) - ref) if statistic else _mean(a - ref)
    if statistic is None and a.ndim == 1:
        lo, hi = _bootstrap((a - ref,), lambda d, axis: d.mean(axis), True, seed, n_resamples, confidence)
    else:
        lo, hi = _bootstrap((np.arange(a.shape[0], dtype=float),), lambda i: stat(a[i.astype(int)]) - ref, False,
                            seed, n_resamples, confidence)
    if not math.isfinite(lo):
        lo = hi = estimate
    return Interval(min(lo, estimate), max(hi, estimate), estimate,
                    _wording(a.shape[0], unit, seeds, "bootstrap"), a.shape[0], seeds)


def seed_interval(ours_per_seed, reference_per_seed, *, confidence: float = CONFIDENCE,
                  what: str = "") -> Interval:
    """Paired t interval of the mean per-seed difference (one training run per seed and side)."""
    from scipy.stats import ttest_rel

    a = np.asarray(ours_per_seed, dtype=float).ravel()
    b = np.asarray(reference_per_seed, dtype=float).ravel()
    if a.shape != b.shape or a.size < 2:
        raise InputError(f"a seed interval needs the same number (at least 2) of seeds per side, got {a.size} and {b.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("per-seed values must be finite")
    d = a - b
    estimate = float(d.mean())
    evidence = f"paired t interval over {a.size} seeds" + (f" ({what})" if what else "")
    if np.ptp(d) == 0:
        # every seed gave the same difference (a metric on a grid, e.g. a depth): the t interval is
        # degenerate, so fall back to an exact sign test, which k agreeing seeds pass only when
        # 2 * 2**-k < 1 - confidence (k >= 6 at 95%); with fewer the interval reaches zero
        if estimate != 0 and 2 * 0.5 ** a.size >= 1 - confidence:
            evidence += f"; all {a.size} seeds agree, fewer than an exact sign test needs"
            return Interval(min(estimate, 0.0), max(estimate, 0.0), estimate, evidence, None, int(a.size))
        return Interval(estimate, estimate, estimate, evidence, None, int(a.size))
    lo, hi = ttest_rel(a, b).confidence_interval(confidence)
    return Interval(float(lo), float(hi), estimate, evidence, None, int(a.size))


def proportion_interval(successes: int, trials: int, reference_rate: float, *, unit: str = "trial",
                        confidence: float = CONFIDENCE) -> Interval:
    """Exact (Clopper-Pearson) interval of the success rate minus `reference_rate`."""
    from scipy.stats import binomtest

    if not (0 <= successes <= trials and trials >= 1):
        raise InputError(f"need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}")
    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="exact")
    rate = successes / trials
    return Interval(ci.low - reference_rate, ci.high - reference_rate, rate - reference_rate,
                    f"exact binomial interval over {trials:,} {unit}s", trials, None)
