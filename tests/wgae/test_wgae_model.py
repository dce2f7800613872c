"""WGAE decoder terms against dense references, the subgraph sampler, TLASGR and short training runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import poisson

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.wgae import model as wm
from tenfold.wgae.model import (
    WGAE,
    GraphTensors,
    WeibullAttentionConv,
    WGAEConfig,
    degree_subgraph,
    link_loglik_dense,
    link_loglik_exact,
    poisson_word_loglik,
    tlasgr_update,
    train_wgae,
)


def test_exact_link_loglik_equals_dense_all_pairs_sum():
    gen = torch.Generator().manual_seed(0)
    z = torch.rand(30, 5, generator=gen, dtype=torch.float64) * 0.5
    edges = torch.tensor([[0, 1, 2, 5, 7, 20], [1, 9, 3, 6, 29, 21]])
    assert torch.allclose(link_loglik_exact(z, edges), link_loglik_dense(z, edges), rtol=1e-10)
    # hand reference: sum over ordered pairs i != j with the VGAE weights
    n, e = 30, 12
    pos_w, norm = (n * (n - 1) - e) / e, n * (n - 1) / (2 * (n * (n - 1) - e))
    rate = (z @ z.T).numpy()
    adj = np.zeros((n, n), bool)
    adj[edges[0], edges[1]] = adj[edges[1], edges[0]] = True
    off = ~np.eye(n, dtype=bool)
    ref = norm * (pos_w * np.log(1 - np.exp(-rate[adj])).sum() - rate[~adj & off].sum())
    assert np.isclose(float(link_loglik_dense(z, edges)), ref, rtol=1e-10)


def test_poisson_word_loglik_matches_scipy_on_dense_counts():
    gen = torch.Generator().manual_seed(1)
    theta = torch.rand(6, 3, generator=gen, dtype=torch.float64) * 4
    phi = torch.rand(8, 3, generator=gen, dtype=torch.float64)
    phi = phi / phi.sum(0)
    x = torch.poisson(theta @ phi.T, generator=gen)  # (N, V)
    rows, cols = torch.nonzero(x, as_tuple=True)
    ours = poisson_word_loglik(theta, phi, rows, cols, x[rows, cols])
    ref = poisson.logpmf(x.numpy(), (theta @ phi.T).numpy()).sum()
    assert np.isclose(float(ours), ref, rtol=1e-10)


def test_degree_subgraph_returns_the_induced_edges_of_distinct_nodes():
    edges = torch.tensor([[0, 0, 1, 2, 3, 5], [1, 2, 2, 3, 4, 6]])
    nodes, sub = degree_subgraph(edges, 8, 5, 2.0, torch.Generator().manual_seed(0))
    assert len(set(nodes.tolist())) == 5
    chosen = set(nodes.tolist())
    expect = {(a, b) for a, b in edges.T.tolist() if a in chosen and b in chosen}
    got = {(int(nodes[a]), int(nodes[b])) for a, b in sub.T.tolist()}
    assert got == expect
    assert 7 not in chosen or len(chosen) == 5  # isolated node 7 is possible only as a last resort


def test_weibull_attention_normalises_and_is_deterministic_at_eval():
    torch.manual_seed(0)
    conv = WeibullAttentionConv(4, 8, 2, shape=1000.0)
    x = torch.randn(5, 4)
    ei = torch.tensor([[0, 1, 2, 3, 4, 0], [1, 2, 3, 4, 0, 2]])
    conv.eval()
    a, b = conv(x, ei), conv(x, ei)
    assert torch.equal(a, b) and float(conv.kl) == 0.0
    conv.train()
    c = conv(x, ei)
    assert float(conv.kl.detach()) > 0 and torch.allclose(c, a, atol=0.05)  # k = 1000: the noise is small


def test_tlasgr_keeps_topics_on_the_simplex(small_net):
    model = WGAE(small_net.n_words, WGAEConfig(topics=(6, 2)))
    g = GraphTensors.from_network(small_net)
    theta = model.embed(g.x, g.edge_index)
    for _ in range(3):
        tlasgr_update(model, theta, g, np.random.default_rng(0))
    for phi in model.phi:
        assert torch.allclose(phi.sum(0), torch.ones(phi.shape[1]), atol=1e-5) and (phi > 0).all()


@pytest.mark.parametrize("encoder,decoder", [("gcn", "dense"), ("gat", "subgraph"), ("gcn", "exact")])
def test_train_wgae_improves_the_elbo(small_net, encoder, decoder):
    cfg = WGAEConfig(encoder=encoder, decoder=decoder, topics=(6, 2), epochs=8, steps_per_epoch=3, samples=2,
                     hidden=16, heads=2, subgraph_nodes=60)
    fit = train_wgae(small_net, cfg, seed=0)
    h = fit.history
    assert np.isfinite([r["elbo_per_node"] for r in h]).all()
    assert h[-1]["elbo_per_node"] > h[0]["elbo_per_node"]


def test_config_and_dense_limit_errors(small_net, monkeypatch):
    with pytest.raises(InputError, match="encoder"):
        WGAEConfig(encoder="mlp")
    with pytest.raises(InputError, match="decoder"):
        WGAEConfig(decoder="sparse")
    monkeypatch.setattr(wm, "DENSE_LIMIT", 50)
    with pytest.raises(UnsupportedError, match="subgraph"):
        train_wgae(small_net, WGAEConfig(topics=(6, 2), epochs=1, steps_per_epoch=1, samples=1, hidden=8))


def test_models_handle_isolated_nodes_empty_documents_and_no_links():
    from tenfold.data.planetoid import build_network
    from tenfold.wgae.gpgbn import GibbsConfig, gibbs

    counts = np.random.default_rng(0).poisson(1.0, size=(30, 12))
    counts[3] = 0
    net = build_network(counts, np.zeros((2, 0), int))
    assert net.report["isolated_nodes"] == 30 and net.report["empty_documents"] == 1
    assert np.isfinite(gibbs(net, GibbsConfig(topics=(3, 2), iterations=4, burn_in=2)).trace).all()
    values = []
    for decoder in ("dense", "subgraph", "exact"):
        cfg = WGAEConfig(topics=(3, 2), epochs=2, steps_per_epoch=1, samples=1, hidden=8, decoder=decoder,
                         subgraph_nodes=10)
        values.append(train_wgae(net, cfg).history[-1]["elbo_per_node"])
    assert np.isfinite(values).all() and np.isclose(values[0], values[2])  # exact == dense
