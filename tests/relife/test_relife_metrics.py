"""Metrics against hand-worked examples, a brute-force float64 reference and the simulator's coupling."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.data.lists import ClickModel, greedy_order
from tenfold.relife.metrics import (
    evaluation_uniforms,
    logged_metrics,
    map_at_k,
    ndcg_at_k,
    rerank_order,
    simulated_metrics,
)


def test_ndcg_and_map_match_a_hand_worked_list():
    ranked = np.array([[1.0, 0.0, 1.0, 0.0]])
    # DCG@3 = 1/log2(2) + 1/log2(4) = 1.5; IDCG@3 = 1 + 1/log2(3)
    assert math.isclose(ndcg_at_k(ranked, 3)[0], 1.5 / (1 + 1 / math.log2(3)))
    # hits at ranks 1 and 3: (1/1 + 2/3) / 2 (LibRerank: averaged over hits inside the top k)
    assert math.isclose(map_at_k(ranked, 3)[0], (1 + 2 / 3) / 2)
    assert math.isclose(map_at_k(np.array([[0.0, 1.0, 1.0]]), 2)[0], 0.5)
    # an ideal with more positives than the list shows lowers NDCG: 1 / (1 + 1/log2(3))
    assert math.isclose(ndcg_at_k(np.array([[1.0, 0.0]]), 2, ideal=np.array([[1.0, 1.0]]))[0], 1 / (1 + 1 / math.log2(3)))


def test_all_zero_lists_score_zero_and_all_one_lists_score_one():
    zeros, ones = np.zeros((1, 5)), np.ones((1, 5))
    for k in (1, 3, 5, 10):
        assert ndcg_at_k(zeros, k)[0] == 0.0 and map_at_k(zeros, k)[0] == 0.0
        assert math.isclose(ndcg_at_k(ones, k)[0], 1.0) and math.isclose(map_at_k(ones, k)[0], 1.0)


def test_rerank_order_puts_padding_last_and_keeps_ties_stable():
    assert rerank_order(np.array([[0.5, 2.0, 0.5, 9.0]]), np.array([[True, True, True, False]])).tolist() == [[1, 0, 2, 3]]


def test_logged_metrics_reorder_labels_by_scores():
    labels, mask = np.array([[0.0, 0.0, 1.0]]), np.ones((1, 3), dtype=bool)
    assert logged_metrics(labels, mask, np.array([[0.0, 0.1, 5.0]]), k=1)["ndcg@1"][0] == 1.0
    assert math.isclose(logged_metrics(labels, mask, np.array([[5.0, 0.1, 0.0]]), k=3)["ndcg@3"][0], 1 / math.log2(4))


def _ndcg_reference(labels, k):
    dcg = sum((2 ** labels[i] - 1) / math.log2(i + 2) for i in range(min(k, len(labels))))
    ideal = sorted(labels, reverse=True)
    idcg = sum((2 ** ideal[i] - 1) / math.log2(i + 2) for i in range(min(k, len(labels))))
    return dcg / idcg if idcg else 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=1, max_size=10), st.sampled_from([1, 3, 5, 10]))
def test_ndcg_matches_brute_force_and_lies_in_unit_interval(labels, k):
    got = ndcg_at_k(np.array([labels], dtype=float), k)[0]
    assert math.isclose(got, _ndcg_reference(labels, k), abs_tol=1e-12)
    assert 0.0 <= map_at_k(np.array([labels], dtype=float), k)[0] <= 1.0


def _toy_lists(seed, n=40, length=8):
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.05, 0.95, (n, length))
    cats = rng.integers(2, 5, (n, length))
    mask = np.ones((n, length), dtype=bool)
    beta = np.where(rng.random(n) < 0.5, 0.0, 4.0)
    return r, cats, mask, beta


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_simulated_ndcg_stays_in_unit_interval_and_the_same_order_scores_the_same(seed):
    r, cats, mask, beta = _toy_lists(seed)
    u = evaluation_uniforms(r.shape, 4, seed)
    order = np.argsort(np.random.default_rng(seed).random(r.shape), 1)
    a = simulated_metrics(r, cats, mask, beta, ClickModel(), order, u)
    b = simulated_metrics(r, cats, mask, beta, ClickModel(), order.copy(), u)
    assert all(np.array_equal(a[k], b[k]) for k in a)  # common random numbers: no evaluation noise between equals
    assert np.all((a["ndcg@5"] >= 0) & (a["ndcg@5"] <= 1 + 1e-12))
    assert np.all(a["expected_clicks"] > 0)


def test_the_oracle_order_beats_the_reverse_order_on_expected_dcg():
    r, cats, mask, beta = _toy_lists(0, n=200)
    u = evaluation_uniforms(r.shape, 8, 0)
    best = simulated_metrics(r, cats, mask, beta, ClickModel(), greedy_order(r, cats, mask, beta), u)
    worst = simulated_metrics(r, cats, mask, beta, ClickModel(), greedy_order(r, cats, mask, beta)[:, ::-1], u)
    assert best["expected_dcg@5"].mean() > worst["expected_dcg@5"].mean() + 0.2
    assert best["ndcg@5"].mean() > worst["ndcg@5"].mean() and best["expected_clicks"].mean() > worst["expected_clicks"].mean()
