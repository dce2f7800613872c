"""Metrics against hand-worked examples and a brute-force float64 reference."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.relife.metrics import evaluate_rerank, map_at_k, ndcg_at_k, rerank_order, utility_at_k


def test_ndcg_map_clicks_match_a_hand_worked_list():
    ranked = np.array([[1.0, 0.0, 1.0, 0.0]])
    # DCG@3 = 1/log2(2) + 1/log2(4) = 1.5; IDCG@3 = 1 + 1/log2(3)
    assert math.isclose(ndcg_at_k(ranked, 3)[0], 1.5 / (1 + 1 / math.log2(3)))
    # hits at ranks 1 and 3: (1/1 + 2/3) / 2 (LibRerank: averaged over hits inside the top k)
    assert math.isclose(map_at_k(ranked, 3)[0], (1 + 2 / 3) / 2)
    assert math.isclose(map_at_k(ranked, 1)[0], 1.0)
    assert math.isclose(map_at_k(np.array([[0.0, 1.0, 1.0]]), 2)[0], 0.5)


def test_all_zero_lists_score_zero_and_all_one_lists_score_one():
    zeros, ones = np.zeros((1, 5)), np.ones((1, 5))
    for k in (1, 3, 5, 10):
        assert ndcg_at_k(zeros, k)[0] == 0.0 and map_at_k(zeros, k)[0] == 0.0
        assert math.isclose(ndcg_at_k(ones, k)[0], 1.0) and math.isclose(map_at_k(ones, k)[0], 1.0)


def test_rerank_order_puts_padding_last_and_keeps_ties_stable():
    scores = np.array([[0.5, 2.0, 0.5, 9.0]])
    mask = np.array([[True, True, True, False]])
    assert rerank_order(scores, mask).tolist() == [[1, 0, 2, 3]]


def test_utility_rescales_a_click_by_the_propensity_ratio():
    theta = 1.0 / np.arange(1, 5)
    ranked = np.array([[1.0, 0.0, 0.0, 0.0]])
    orig = np.array([[2, 0, 1, 3]])  # the click was logged at position 3, now shown first
    assert math.isclose(utility_at_k(ranked, orig, 1, theta)[0], 1.0 / (1 / 3))


def test_evaluate_rerank_reorders_labels_by_scores():
    labels = np.array([[0.0, 0.0, 1.0]])
    mask = np.ones_like(labels, dtype=bool)
    theta = np.ones(3)
    best = evaluate_rerank(labels, mask, np.array([[0.0, 0.1, 5.0]]), theta)
    worst = evaluate_rerank(labels, mask, np.array([[5.0, 0.1, 0.0]]), theta)
    assert best["ndcg@1"] == 1.0 and worst["ndcg@1"] == 0.0
    assert math.isclose(worst["ndcg@3"], 1 / math.log2(4))


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
    assert 0.0 <= got <= 1.0 + 1e-12
    assert 0.0 <= map_at_k(np.array([labels], dtype=float), k)[0] <= 1.0
