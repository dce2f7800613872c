"""CTR metrics (AUC, LogLoss, GAUC as in the lineage code) and the AUC interval over test users.

`auc` is the Mann-Whitney AUC with ties counted half and optional sample weights. `UserAUC` keeps
one model's test scores sorted once, so the AUC of any re-weighting of the test users (a bootstrap
resample, where a user drawn twice counts twice) costs one pass: for samples sorted by score with
tie groups g,  AUC(w) = sum_pos w_i (N_<(g_i) + N_=(g_i) / 2) / (W_pos W_neg),  N_< and N_= the
negative weight below and inside the group. `auc_interval` hands that to `core.stats.paired_bootstrap`
with the test users as units, so the interval counts the users (not the samples) as what is drawn.
That interval holds the training seeds fixed; `claim_interval` widens it to the union with the paired
t interval over seeds, so a claim holds only if neither the test users drawn nor the seeds explain it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tenfold.core.errors import InputError
from tenfold.core.stats import Interval, paired_bootstrap, seed_interval


def auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve (ties count half); nan if a class is missing."""
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(s, kind="stable")
    s, y, w = s[order], y[order], w[order]
    group = np.concatenate([[0], np.cumsum(np.diff(s) != 0)])
    return _sorted_auc(y, w, group)


def _sorted_auc(y: np.ndarray, w: np.ndarray, group: np.ndarray) -> float:
    neg, pos = w * (1.0 - y), w * y
    neg_group = np.bincount(group, neg, minlength=int(group[-1]) + 1)
    below = np.cumsum(neg_group) - neg_group
    denom = pos.sum() * neg.sum()
    if denom <= 0:
        return float("nan")
    return float((pos * (below[group] + 0.5 * neg_group[group])).sum() / denom)


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probs, dtype=float), eps, 1 - eps)
    y = np.asarray(labels, dtype=float)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def gauc(labels: np.ndarray, scores: np.ndarray, users: np.ndarray) -> float:
    """Impression-weighted mean of per-user AUCs over users with both classes."""
    order = np.argsort(users, kind="stable")
    labels, scores, users = labels[order], scores[order], users[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    total, weight = 0.0, 0
    for y, s in zip(np.split(labels, bounds), np.split(scores, bounds), strict=True):
        if 0 < y.sum() < len(y):
            total += auc(y, s) * len(y)
            weight += len(y)
    return total / weight if weight else float("nan")


class UserAUC:
    """One model's scores on the test samples, sorted once; `value(user_weights)` is the AUC with each
    user's samples counted `user_weights[u]` times."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray, unit: np.ndarray):
        order = np.argsort(np.asarray(scores, dtype=float), kind="stable")
        s = np.asarray(scores, dtype=float)[order]
        self.y = np.asarray(labels, dtype=float)[order]
        self.unit = np.asarray(unit)[order]
        self.group = np.concatenate([[0], np.cumsum(np.diff(s) != 0)])

    def value(self, user_weights: np.ndarray) -> float:
        return _sorted_auc(self.y, user_weights[self.unit], self.group)


def auc_interval(ours: Sequence[np.ndarray], reference: Sequence[np.ndarray], labels: np.ndarray, users: np.ndarray,
                 seed: int = 0) -> Interval:
    """95% interval of mean-over-seeds AUC(ours) - AUC(reference), resampling test users.

    `ours[k]` and `reference[k]` are seed k's scores on the same test samples (labels, users). The
    bootstrap's units are the distinct users; each unit's row is (user index, model: 1 ours, 0
    reference), and the statistic is the seed-mean AUC of that model with every drawn user's samples.
    """
    if len(ours) != len(reference) or not ours:
        raise InputError(f"need the same number (>= 1) of seeds per side, got {len(ours)} and {len(reference)}")
    names, unit = np.unique(np.asarray(users), return_inverse=True)
    n = len(names)
    tables = {1: [UserAUC(labels, s, unit) for s in ours], 0: [UserAUC(labels, s, unit) for s in reference]}

    def statistic(rows: np.ndarray) -> float:
        w = np.bincount(rows[:, 0].astype(int), minlength=n).astype(float)
        return float(np.mean([t.value(w) for t in tables[int(rows[0, 1])]]))

    index = np.arange(n, dtype=float)
    return paired_bootstrap(np.column_stack([index, np.ones(n)]), np.column_stack([index, np.zeros(n)]),
                            statistic=statistic, unit="test user", seeds=len(ours), seed=seed)


def claim_interval(ours: Sequence[np.ndarray], reference: Sequence[np.ndarray], labels: np.ndarray,
                   users: np.ndarray, seed: int = 0) -> tuple[Interval, Interval, Interval | None]:
    """(claim interval, user-bootstrap interval, seed t interval or None for one seed).

    The claim interval is the union of the two: the user bootstrap averages the seeds (their spread
    is not in it), the t interval over seeds keeps the test users fixed (their sampling is not in it).
    """
    users_iv = auc_interval(ours, reference, labels, users, seed)
    if len(ours) < 2:
        return users_iv, users_iv, None
    seeds_iv = seed_interval([auc(labels, s) for s in ours], [auc(labels, s) for s in reference],
                             what="AUC on all test samples")
    union = Interval(min(users_iv.lo, seeds_iv.lo), max(users_iv.hi, seeds_iv.hi), users_iv.estimate,
                     f"union of a {users_iv.evidence} (seed-mean AUC) and a {seeds_iv.evidence}",
                     users_iv.units, len(ours))
    return union, users_iv, seeds_iv
