"""Re-ranking metrics with LibRerank `evaluate_multi` semantics (research note 2.4), k in {1, 3, 5, 10}.

A model's scores re-order each list (descending, ties kept in initial order, padding last); the
labels travel with their items. On logged labels this assumes a label does not depend on the position
it was shown at; under the simulator the labels are position-free intents and the exact expected
clicks of the re-ranked list are reported as well.

* NDCG@k = sum_{i<=k} (2^{y_i} - 1) / log2(i + 1) / IDCG@k, and 0 for a list without positives.
* MAP@k = (1 / #hits@k) sum_{i<=k, y_i = 1} (#hits up to i) / i: the denominator is the number of
  positives *within the top k* (LibRerank), not all positives; 0 when there is none.
* clicks@k = sum_{i<=k} y_i.
* utility@k = sum_{i<=k} y_i theta(i) / theta(orig_pos_i) (MIR): a click moved from its logged
  position to position i is rescaled by the ratio of observation propensities.
"""

from __future__ import annotations

import numpy as np

KS = (1, 3, 5, 10)


def rerank_order(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, L) indices that sort each list by descending score; padded positions go last, ties stay stable."""
    keyed = np.where(mask, -np.asarray(scores, dtype=np.float64), np.inf)
    return np.argsort(keyed, axis=1, kind="stable")


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def ndcg_at_k(ranked: np.ndarray, k: int) -> np.ndarray:
    """Per-list NDCG@k of labels already in ranked order (N, L); 0 where the list has no positive."""
    k = min(k, ranked.shape[1])
    gains = 2.0 ** ranked - 1.0
    disc = _discounts(k)
    dcg = (gains[:, :k] * disc).sum(1)
    idcg = (-np.sort(-gains, axis=1)[:, :k] * disc).sum(1)
    return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0)


def map_at_k(ranked: np.ndarray, k: int) -> np.ndarray:
    """Per-list MAP@k (LibRerank: averaged over the hits inside the top k); 0 without a hit."""
    k = min(k, ranked.shape[1])
    hit = (ranked[:, :k] > 0).astype(float)
    hits = np.cumsum(hit, axis=1)
    ap = (hit * hits / np.arange(1, k + 1)).sum(1)
    return np.where(hits[:, -1] > 0, ap / np.maximum(hits[:, -1], 1.0), 0.0)


def clicks_at_k(ranked: np.ndarray, k: int) -> np.ndarray:
    return ranked[:, : min(k, ranked.shape[1])].sum(1)


def utility_at_k(ranked: np.ndarray, orig_pos: np.ndarray, k: int, theta: np.ndarray) -> np.ndarray:
    """Per-list utility@k: labels rescaled by theta(new position) / theta(original position)."""
    k = min(k, ranked.shape[1])
    ratio = theta[None, :k] / theta[orig_pos[:, :k]]
    return (ranked[:, :k] * ratio).sum(1)


def evaluate_rerank(labels: np.ndarray, mask: np.ndarray, scores: np.ndarray, theta: np.ndarray,
                    ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Mean NDCG@k, MAP@k, clicks@k and utility@k over lists, re-ordered by `scores` (+ the SE of NDCG@5, MAP@5)."""
    order = rerank_order(scores, mask)
    ranked = np.take_along_axis(np.where(mask, labels, 0.0), order, 1)
    out = {}
    for k in ks:
        ndcg, ap = ndcg_at_k(ranked, k), map_at_k(ranked, k)
        out[f"ndcg@{k}"] = float(ndcg.mean())
        out[f"map@{k}"] = float(ap.mean())
        if k == 5:  # standard error of the mean over lists: how far apart two models must be to matter
            out["ndcg@5_se"] = float(ndcg.std(ddof=1) / np.sqrt(len(ndcg))) if len(ndcg) > 1 else 0.0
            out["map@5_se"] = float(ap.std(ddof=1) / np.sqrt(len(ap))) if len(ap) > 1 else 0.0
        out[f"clicks@{k}"] = float(clicks_at_k(ranked, k).mean())
        out[f"utility@{k}"] = float(utility_at_k(ranked, order, k, theta).mean())
    return out
