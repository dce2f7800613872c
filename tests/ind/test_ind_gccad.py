"""GCCAD's losses against float64 references, its straight-through sampler and its outputs."""

from __future__ import annotations

import math

import torch

from tenfold.ind.gccad import GCCAD, GCCADConfig, contrastive_loss, link_loss, train_gccad
from tenfold.ind.graph import AuthorGraph


def _graph(seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    ei = torch.tensor([[i for i in range(n) for j in range(n) if i != j], [j for i in range(n) for j in range(n) if i != j]])
    y = torch.tensor([1.0] * (n - 2) + [0.0, 0.0])
    return AuthorGraph("a", "x", [str(i) for i in range(n)], torch.randn(n, 6, generator=g), ei,
                       torch.rand(ei.shape[1], 3, generator=g), y)


def test_contrastive_loss_matches_a_loop_in_float64():
    z, c = torch.randn(5, 4, dtype=torch.float64), torch.randn(1, 4, dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    tau = 0.1
    sims = [float(z[i] @ c[0] / (z[i].norm() * c[0].norm())) / tau for i in range(5)]
    neg = [sims[i] for i in (1, 4)]
    ref = sum(-sims[i] + math.log(math.exp(sims[i]) + sum(math.exp(s) for s in neg)) for i in (0, 2, 3)) / 3
    assert abs(contrastive_loss(z, c, y, tau).item() - ref) < 1e-9


def test_link_loss_is_zero_without_negatives_and_matches_reference():
    p = torch.tensor([0.9, 0.2, 0.7], dtype=torch.float64)
    assert link_loss(p, torch.ones(3), 0.1).item() == 0.0
    label = torch.tensor([1.0, 0.0, 1.0])
    ref = sum(-x / 0.1 + math.log(math.exp(x / 0.1) + math.exp(0.2 / 0.1)) for x in (0.9, 0.7)) / 2
    assert abs(link_loss(p, label, 0.1).item() - ref) < 1e-9


def test_scores_are_cosines_and_embeddings_have_the_documented_shape():
    g = _graph()
    model = GCCAD(6, GCCADConfig(hidden=4)).eval()
    s = model.scores(g)
    per, whole = model.embed(g)
    assert s.shape == (8,) and bool(((s >= -1 - 1e-6) & (s <= 1 + 1e-6)).all())
    assert per.shape == (8, 5) and whole.shape == (5,)
    assert torch.allclose(per[:, -1], s, atol=1e-6)


def test_training_is_deterministic_and_finite():
    graphs = [_graph(i) for i in range(3)]
    a, ha = train_gccad(graphs, GCCADConfig(hidden=4, epochs=3, lr=1e-2), seed=0)
    b, hb = train_gccad(graphs, GCCADConfig(hidden=4, epochs=3, lr=1e-2), seed=0)
    assert ha == hb and all(math.isfinite(h) for h in ha)
    assert torch.equal(a.scores(graphs[0]), b.scores(graphs[0]))
