"""AUC against scikit-learn, the user-bootstrap AUC interval, and the AUC claims' negative controls."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from tenfold.core.results import Result
from tenfold.liber.metrics import UserAUC, auc, claim_interval, gauc


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 60), st.booleans())
def test_weighted_auc_with_ties_equals_sklearn(seed, n, ties):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = rng.integers(0, 4, n).astype(float) if ties else rng.normal(size=n)
    w = rng.integers(1, 4, n).astype(float)
    assert np.isclose(auc(y, s), roc_auc_score(y, s))
    assert np.isclose(auc(y, s, w), roc_auc_score(y, s, sample_weight=w))


def test_user_reweighted_auc_equals_sklearn_on_explicitly_duplicated_users():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(6), 7)
    y = rng.integers(0, 2, len(users))
    s = rng.normal(size=len(users)) + y
    weights = np.array([0, 2, 1, 3, 0, 1], dtype=float)  # a bootstrap draw: user 3 three times, 0 and 4 never
    keep = np.concatenate([np.tile(np.flatnonzero(users == u), int(k)) for u, k in enumerate(weights)])
    assert np.isclose(UserAUC(y, s, users).value(weights), roc_auc_score(y[keep], s[keep]))


def test_gauc_is_the_impression_weighted_mean_of_per_user_aucs():
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1])
    s = np.array([0.1, 0.9, 0.3, 0.5, 0.2, 0.6, 0.4, 0.8, 0.7])
    users = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3])
    per = [roc_auc_score(y[users == u], s[users == u]) for u in (1, 2, 3)]
    assert np.isclose(gauc(y, s, users), np.mean(per))


def _claim(ours, ref, y, users):
    result = Result(method="liber", kind="reproduce", paper={})
    interval, users_iv, seeds_iv = claim_interval(ours, ref, y, users)
    assert interval.lo <= min(users_iv.lo, seeds_iv.lo) and interval.hi >= max(users_iv.hi, seeds_iv.hi)
    return result.claim("c", "ours beats ref", float(np.mean([auc(y, o) for o in ours])),
                        float(np.mean([auc(y, r) for r in ref])), "ref", better="higher", interval=interval)


def _scores(seed, signal):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(60), 20)
    y = rng.integers(0, 2, len(users))
    base = rng.normal(size=len(users)) + 0.5 * y
    return y, users, base, [base + signal * y + 0.3 * rng.normal(size=len(users)) for _ in range(3)]


def test_auc_claim_negative_control_reference_against_itself_is_not_holds():
    y, users, base, _ = _scores(0, 0.0)
    c = _claim([base] * 3, [base] * 3, y, users)
    assert c.verdict == "inconclusive" and c.interval == (0.0, 0.0)


def test_auc_claim_negative_control_noise_relabelled_as_ours_is_not_holds():
    y, users, base, noisy = _scores(1, 0.0)  # "ours" = the reference plus information-free noise
    assert _claim(noisy, [base] * 3, y, users).verdict != "holds"


def test_auc_claim_detects_a_real_gain():
    y, users, base, better = _scores(2, 1.0)  # "ours" carries more of the label
    c = _claim(better, [base] * 3, y, users)
    assert c.verdict == "holds" and c.interval[0] > 0
