"""Re-ranking metrics with LibRerank `evaluate_multi` semantics (research note 2.4), per list.

A model's scores re-order each list (descending, ties kept in initial order, padding last).

* NDCG@k = sum_{i<=k} (2^{y_i} - 1) / log2(i + 1) / IDCG@k, 0 for a list without positives. IDCG
  comes from the same labels (LibRerank), or from `ideal` labels when the labels depend on the order
  (the simulator: see `simulated_metrics`).
* MAP@k = (1 / #hits@k) sum_{i<=k, y_i = 1} (#hits up to i) / i: the denominator is the number of
  positives *within the top k* (LibRerank), not all positives; 0 when there is none.
* clicks@k = sum_{i<=k} y_i.

Logged lists (`logged_metrics`): the labels travel with their items (ratings do not depend on the
position a list showed them at). Simulated lists (`simulated_metrics`): the re-ranked list is shown
to the simulator, so its own order sets each item's context intent r'; metrics are computed on intent
labels y = 1[U < r'] and on simulated clicks of that list, with the uniforms U shared by every model
(common random numbers, `draws` of them per list), plus the exact expected clicks and the exact
expected DCG@5 of intent.
"""

from __future__ import annotations

import numpy as np

from tenfold.data.lists import ClickModel, substitution_intent

K = 5


def rerank_order(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, L) indices that sort each list by descending score; padded positions go last, ties stay stable."""
    keyed = np.where(mask, -np.asarray(scores, dtype=np.float64), np.inf)
    return np.argsort(keyed, axis=-1, kind="stable")


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def ndcg_at_k(ranked: np.ndarray, k: int, ideal: np.ndarray | None = None) -> np.ndarray:
    """Per-list NDCG@k of labels in ranked order (..., L); IDCG from `ideal` labels (default: the same)."""
    k = min(k, ranked.shape[-1])
    disc = _discounts(k)
    dcg = ((2.0 ** ranked[..., :k] - 1.0) * disc).sum(-1)
    best = -np.sort(-(2.0 ** (ranked if ideal is None else ideal) - 1.0), axis=-1)[..., :k]
    idcg = (best * disc).sum(-1)
    return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0)


def map_at_k(ranked: np.ndarray, k: int) -> np.ndarray:
    """Per-list MAP@k (LibRerank: averaged over the hits inside the top k); 0 without a hit."""
    k = min(k, ranked.shape[-1])
    hit = (ranked[..., :k] > 0).astype(float)
    hits = np.cumsum(hit, axis=-1)
    ap = (hit * hits / np.arange(1, k + 1)).sum(-1)
    return np.where(hits[..., -1] > 0, ap / np.maximum(hits[..., -1], 1.0), 0.0)


def clicks_at_k(ranked: np.ndarray, k: int) -> np.ndarray:
    return ranked[..., : min(k, ranked.shape[-1])].sum(-1)


def logged_metrics(labels: np.ndarray, mask: np.ndarray, scores: np.ndarray, k: int = K) -> dict[str, np.ndarray]:
    """Per-list NDCG@k, MAP@k and clicks@k of logged labels re-ordered by `scores`."""
    order = rerank_order(scores, mask)
    ranked = np.take_along_axis(np.where(mask, labels, 0.0), order, -1)
    return {f"ndcg@{k}": ndcg_at_k(ranked, k), f"map@{k}": map_at_k(ranked, k), f"clicks@{k}": clicks_at_k(ranked, k)}


def evaluation_uniforms(shape: tuple[int, int], draws: int, seed: int) -> dict[str, np.ndarray]:
    """The simulator's randomness for evaluation, shared by every model: intent uniforms indexed by
    list slot (the same item gets the same uniform wherever it is shown) and click uniforms by position."""
    rng = np.random.default_rng(seed)
    return {name: rng.random((draws, *shape)) for name in ("intent", "examine", "click", "stop")}


def simulated_metrics(relevance: np.ndarray, cats: np.ndarray, mask: np.ndarray, beta: np.ndarray,
                      click: ClickModel, order: np.ndarray, uniforms: dict[str, np.ndarray],
                      k: int = K) -> dict[str, np.ndarray]:
    """Per-list metrics (averaged over the draws) of lists shown to the simulator in `order` (N, L).

    Intent labels y_j = 1[U_j < r'_j(order)]; their IDCG is that of the context-free labels
    1[U_j < r_j] of the same draw, which no order can change (r' <= r, so y <= those labels): an order
    cannot raise its NDCG by suppressing intents. Clicks follow the click model on the shown list;
    their NDCG/MAP use LibRerank semantics.
    """
    shown = np.take_along_axis(mask, order, 1)
    r = np.take_along_axis(relevance.astype(np.float64), order, 1)
    context = substitution_intent(r, np.take_along_axis(cats, order, 1), shown, beta)
    u = np.take_along_axis(uniforms["intent"], np.broadcast_to(order, uniforms["intent"].shape), 2)
    intent = ((u < context) & shown).astype(float)
    ideal = ((uniforms["intent"] < relevance) & mask).astype(float)
    clicks = click.sample(np.broadcast_to(context, u.shape), np.broadcast_to(shown, u.shape),
                          uniforms["examine"], uniforms["click"], uniforms["stop"])
    z = (-np.sort(-np.where(mask, relevance, 0.0), axis=1)[:, :k] * _discounts(min(k, r.shape[1]))).sum(1)
    edcg = (context[:, :k] * _discounts(min(k, r.shape[1]))).sum(1)
    return {f"ndcg@{k}": ndcg_at_k(intent, k, ideal).mean(0), f"map@{k}": map_at_k(intent, k).mean(0),
            f"intent@{k}": clicks_at_k(intent, k).mean(0),
            f"expected_dcg@{k}": np.where(z > 0, edcg / np.where(z > 0, z, 1.0), 0.0),
            f"click_ndcg@{k}": ndcg_at_k(clicks, k).mean(0), f"click_map@{k}": map_at_k(clicks, k).mean(0),
            "expected_clicks": click.click_probabilities(context, shown).sum(1)}
