"""The official IND metric against hand-worked cases and sklearn-free properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.ind.metrics import weighted_auc_map

LABELS = {
    "A": {"p1": 1, "p2": 1, "p3": 0},
    "B": {"q1": 1, "q2": 0, "q3": 0, "q4": 1},
    "C": {"r1": 1, "r2": 1},  # no outliers: weight 0, skipped
}
SCORES = {
    "A": {"p1": 0.9, "p2": 0.2, "p3": 0.5},
    "B": {"q1": 0.8, "q2": 0.1, "q3": 0.3, "q4": 0.6},
    "C": {"r1": 0.1, "r2": 0.9},
}


def test_weighted_auc_and_map_match_hand_worked_example():
    # A: pairs (p1>p3 yes, p2>p3 no) -> AUC 1/2; ranking p1(+), p3(-), p2(+) -> AP = (1 + 2/3) / 2; weight 1
    # B: both normals above both outliers -> AUC 1, AP 1; weight 2. C is skipped.
    s = weighted_auc_map(LABELS, SCORES)
    assert s.authors == 2
    assert s.wauc == pytest.approx((1 * 0.5 + 2 * 1.0) / 3)
    assert s.wmap == pytest.approx((1 * (1 + 2 / 3) / 2 + 2 * 1.0) / 3)


def test_tied_scores_give_half_credit():
    s = weighted_auc_map({"A": {"a": 1, "b": 0}}, {"A": {"a": 0.5, "b": 0.5}})
    assert s.wauc == pytest.approx(0.5)


def test_missing_paper_or_author_is_rejected_with_its_id():
    with pytest.raises(InputError, match="p3"):
        weighted_auc_map(LABELS, {**SCORES, "A": {"p1": 0.9, "p2": 0.2}})
    with pytest.raises(InputError, match="'B'"):
        weighted_auc_map(LABELS, {"A": SCORES["A"]})


def test_no_author_with_outliers_is_rejected():
    with pytest.raises(InputError, match="undefined"):
        weighted_auc_map({"C": LABELS["C"]}, SCORES)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=6, max_size=6, unique=True))
def test_weighted_auc_is_invariant_to_monotone_rescaling(values):
    labels = {"A": {f"p{i}": int(i % 3 != 0) for i in range(6)}}
    base = {"A": {f"p{i}": v for i, v in enumerate(values)}}
    squashed = {"A": {k: float(3 * v ** 3 + 1) for k, v in base["A"].items()}}  # exact in float64
    a, b = weighted_auc_map(labels, base), weighted_auc_map(labels, squashed)
    assert a.wauc == pytest.approx(b.wauc) and a.wmap == pytest.approx(b.wmap)


def test_pairwise_auc_reference():
    # independent reference: fraction of (normal, outlier) pairs ordered correctly (ties 1/2)
    lab, sc = LABELS["B"], SCORES["B"]
    pos = [sc[p] for p in lab if lab[p]]
    neg = [sc[p] for p in lab if not lab[p]]
    ref = sum((x > y) + 0.5 * (x == y) for x in pos for y in neg) / (len(pos) * len(neg))
    assert weighted_auc_map({"B": lab}, {"B": sc}).wauc == pytest.approx(ref)
