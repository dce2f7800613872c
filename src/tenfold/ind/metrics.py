"""The official IND metric: per-author AUC and AP, weighted by each author's number of outliers.

weighted AUC = sum_a w_a AUC_a / sum_a w_a with w_a = #outliers of a (labels: normal 1, outlier 0,
score = probability of being correctly assigned); the same weights give the weighted MAP. Authors
with no outliers have weight 0 and are skipped (their AUC is undefined).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from tenfold.core.errors import InputError


@dataclass(frozen=True)
class IndScore:
    wauc: float
    wmap: float
    authors: int  # authors with weight > 0
    per_author: dict  # aid -> (auc, ap, weight)

    def as_dict(self) -> dict:
        return {"wauc": self.wauc, "wmap": self.wmap}


def weighted_auc_map(labels: dict[str, dict[str, int]], scores: dict[str, dict[str, float]]) -> IndScore:
    """Score a submission `{aid: {pid: score}}` against labels `{aid: {pid: 1 normal | 0 outlier}}`."""
    num_auc = num_ap = den = 0.0
    per = {}
    for aid, lab in labels.items():
        weight = sum(1 for v in lab.values() if v == 0)
        if weight == 0 or weight == len(lab):
            continue  # one class only: AUC undefined (all-outlier profiles do not occur in WhoIsWho)
        if aid not in scores:
            raise InputError(f"submission lacks author {aid!r}; every labelled author needs a score for each paper")
        sub = scores[aid]
        missing = [p for p in lab if p not in sub]
        if missing:
            raise InputError(f"submission for author {aid!r} lacks paper {missing[0]!r} ({len(missing)} missing)")
        y = np.array([lab[p] for p in lab], dtype=int)
        s = np.array([float(sub[p]) for p in lab], dtype=float)
        if not np.all(np.isfinite(s)):
            raise InputError(f"submission for author {aid!r} has a non-finite score")
        auc, ap = float(roc_auc_score(y, s)), float(average_precision_score(y, s))
        per[aid] = (auc, ap, weight)
        num_auc += weight * auc
        num_ap += weight * ap
        den += weight
    if den == 0:
        raise InputError("no author has both normal and outlier papers: the weighted AUC is undefined")
    return IndScore(num_auc / den, num_ap / den, len(per), per)


def _table(runs: list[IndScore], authors: list[str]) -> np.ndarray:
    """(authors, seeds + 1): each run's per-author AUC, then the author's weight (the same in every run)."""
    return np.array([[r.per_author[a][0] for r in runs] + [runs[0].per_author[a][2]] for a in authors], dtype=float)


def _weighted_auc_of(table: np.ndarray) -> float:
    """Mean over seeds of sum_a w_a AUC_a / sum_a w_a on rows (authors) of `_table`."""
    w = table[:, -1]
    return float((table[:, :-1] * w[:, None]).sum(0).mean() / w.sum())


def weighted_auc_interval(ours: list[IndScore], reference: list[IndScore]):
    """95% interval of wAUC(ours) - wAUC(reference): paired bootstrap over the authors both scored
    (with several seeds, each resampled author keeps all its seeds' AUCs)."""
    from tenfold.core.stats import paired_bootstrap

    authors = sorted(set(ours[0].per_author).intersection(*(r.per_author for r in ours + reference)))
    if len(ours) != len(reference):
        raise InputError(f"{len(ours)} runs of ours against {len(reference)} of the reference: pair them by seed")
    return paired_bootstrap(_table(ours, authors), _table(reference, authors), statistic=_weighted_auc_of,
                            unit="held-out author", seeds=len(ours))


def weighted_auc_above(runs: list[IndScore], threshold: float):
    """95% interval of wAUC - threshold, bootstrapping the authors (and their seeds) of `runs`."""
    from tenfold.core.stats import one_sample

    authors = sorted(set(runs[0].per_author).intersection(*(r.per_author for r in runs)))
    return one_sample(_table(runs, authors), threshold, statistic=_weighted_auc_of, unit="held-out author",
                      seeds=len(runs))
