"""Graph features in one basis (a fixed map of GCCAD's score, out of fold for training authors), the
LM context check, and the fold assignment."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.ind import pipeline
from tenfold.ind.graph import AuthorGraph
from tenfold.ind.model import MindConfig
from tenfold.ind.pipeline import (
    STRUCTURE,
    DetectorConfig,
    assign_folds,
    graph_features,
    lm_context,
    prompt_limit,
    structural_features,
)


def test_structural_features_of_a_hand_worked_author():
    f = structural_features(torch.tensor([0.2, 0.8, 0.5, 0.5]))
    mean, std = 0.5, (0.09 * 2 / 4) ** 0.5
    assert f.shape == (4, len(STRUCTURE))
    assert torch.allclose(f[:, 0], torch.tensor([0.2, 0.8, 0.5, 0.5]))
    assert torch.allclose(f[:, 1], torch.tensor([-0.3, 0.3, 0.0, 0.0]) / std, atol=1e-6)
    assert torch.allclose(f[:, 2], torch.tensor([0.0, 1.0, 0.5, 0.5]))  # ties share the mean rank (1.5 / 3)
    assert torch.allclose(f[:, 3], torch.full((4,), mean)) and torch.allclose(f[:, 4], torch.full((4,), std))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-100, 100), min_size=2, max_size=12), st.floats(0.1, 5), st.floats(-2, 2))
def test_standardised_columns_do_not_depend_on_the_score_scale(values, scale, shift):
    s = torch.tensor(values, dtype=torch.float64) / 100  # cosine-like scores on a grid (ties included)
    a, b = structural_features(s), structural_features(s * scale + shift)
    assert torch.allclose(a[:, 1:3], b[:, 1:3], atol=1e-4)  # z-score and rank: invariant to positive affine maps
    assert (a[:, 2] >= 0).all() and (a[:, 2] <= 1).all()


class _Scorer:
    """Stands in for a GCCAD whose hidden basis is anything: only its scores reach MIND."""

    def __init__(self, scores):
        self._scores = scores

    def scores(self, g):
        return self._scores[g.aid]


def _graph(aid, n):
    return AuthorGraph(aid, "x", [f"{aid}{i}" for i in range(n)], torch.zeros(n, 2), torch.zeros(2, 0, dtype=torch.long),
                       torch.zeros(0, 3), None)


def test_train_and_held_out_vectors_come_from_one_map_of_the_gccad_score():
    train, held = _graph("t", 4), _graph("h", 3)
    m0 = _Scorer({"t": torch.tensor([0.9, 0.1, 0.5, 0.7]), "h": torch.tensor([0.2, 0.4, 0.9])})
    m1 = _Scorer({"t": torch.tensor([0.3, 0.8, 0.6, 0.2]), "h": torch.tensor([0.6, 0.0, 0.3])})
    feats = graph_features([m0, m1], [train, held], folds={"t": 1})
    # the training author is scored by the model of its fold (trained without it) ...
    assert torch.allclose(torch.stack([feats[("t", p)] for p in train.pids]), structural_features(m1.scores(train)))
    # ... the held-out author by the mean of the fold models, through the same map
    mean = (m0.scores(held) + m1.scores(held)) / 2
    assert torch.allclose(torch.stack([feats[("h", p)] for p in held.pids]), structural_features(mean))
    # no model's hidden vectors enter: the width is the map's, whatever the GCCAD
    assert {v.shape for v in feats.values()} == {torch.Size([len(STRUCTURE)])}


def test_fold_models_never_train_on_their_own_fold(monkeypatch):
    seen = []
    monkeypatch.setattr(pipeline, "train_gccad", lambda graphs, cfg, seed: (seen.append({g.aid for g in graphs}), []))
    graphs = [_graph(f"a{i}", 3) for i in range(7)]
    folds = assign_folds([g.aid for g in graphs], 2, seed=3)
    pipeline.fit_gccad_folds(graphs, folds, None, seed=0)
    assert len(seen) == 2
    for f, trained_on in enumerate(seen):
        assert trained_on == {a for a, k in folds.items() if k != f}
    assert sorted(folds.values()).count(0) in (3, 4) and assign_folds(list(folds), 2, 3) == folds


def test_lm_context_reads_the_zoo_report_else_the_model_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    assert lm_context(str(tmp_path)) == 2048
    (tmp_path / "zoo.json").write_text(json.dumps({"training_context": 128}))
    assert lm_context(str(tmp_path)) == 128


def test_a_prompt_limit_beyond_the_lm_context_is_refused_naming_the_setting(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 512}))
    assert prompt_limit(DetectorConfig(lm=str(tmp_path))) == 512
    assert prompt_limit(DetectorConfig(lm=str(tmp_path), mind=MindConfig(max_length=300))) == 300
    with pytest.raises(InputError, match="max_length=600 is longer than the 512 tokens"):
        prompt_limit(DetectorConfig(lm=str(tmp_path), mind=MindConfig(max_length=600)))


def test_one_fold_is_refused():
    with pytest.raises(InputError, match="folds must be at least 2"):
        DetectorConfig(folds=1)
