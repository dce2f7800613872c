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


def test_batched_graphs_give_the_same_states_and_mean_loss_as_one_by_one():
    from tenfold.ind.gccad import GraphBatch, gccad_loss

    graphs = [_graph(i, n) for i, n in ((0, 8), (1, 6), (2, 7))]
    model = GCCAD(6, GCCADConfig(hidden=4)).eval()  # eval: deterministic edge sampling, no dropout
    with torch.no_grad():
        xb, cb, _ = model(GraphBatch.of(graphs))
        singles = [model(g) for g in graphs]
        assert torch.allclose(xb, torch.cat([s[0] for s in singles]), atol=1e-5)
        assert torch.allclose(cb, torch.cat([s[1] for s in singles]), atol=1e-5)
        batched = gccad_loss(model, GraphBatch.of(graphs)).item()
        one_by_one = sum(gccad_loss(model, g).item() for g in graphs) / len(graphs)
    assert abs(batched - one_by_one) < 1e-5
