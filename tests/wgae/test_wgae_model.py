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
    ei = torch.tensor([[0, 1, 2, 3, 4, 0, 0, 1, 2, 3, 4], [1, 2, 3, 4, 0, 2, 0, 1, 2, 3, 4]])
    conv.eval()
    a, b = conv(x, ei), conv(x, ei)
    assert torch.equal(a, b) and float(conv.kl) == 0.0
    conv.train()
    c = conv(x, ei, torch.Generator().manual_seed(0))
    assert float(conv.kl.detach()) > 0 and torch.allclose(c, a, atol=0.05)  # k = 1000: the noise is small


def _with_isolated_nodes():
    """8 documents, links only among nodes 0-3; nodes 4-7 are isolated."""
    from tenfold.data.planetoid import build_network

    counts = np.random.default_rng(0).poisson(2.0, size=(8, 12)) + np.eye(8, 12, dtype=int)
    return build_network(counts, np.array([[0, 1, 2], [1, 2, 3]]))


def test_attention_output_depends_on_the_nodes_own_features():
    net = _with_isolated_nodes()
    g = GraphTensors.from_network(net)
    conv = WeibullAttentionConv(12, 8, 2, shape=1000.0).eval()
    x = g.x.to_dense()
    base = conv(x, g)
    for node in (1, 5):  # a linked node and an isolated one: change only that node's features
        x2 = x.clone()
        x2[node] = x2[node] * 2 + 0.5
        out = conv(x2, g)
        assert not torch.allclose(out[node], base[node])
        others = [i for i in range(8) if i != node and not (node == 1 and i in (0, 2))]
        assert torch.allclose(out[others], base[others])  # only the node and its neighbours move


def test_isolated_nodes_get_different_outputs_in_both_encoders():
    net = _with_isolated_nodes()
    g = GraphTensors.from_network(net)
    for encoder in ("gat", "gcn"):
        model = WGAE(net.n_words, WGAEConfig(encoder=encoder, topics=(3,), hidden=8, heads=2), seed=0)
        theta = model.embed(g)[0]
        iso = theta[4:]
        assert torch.cdist(iso, iso)[~torch.eye(4, dtype=torch.bool)].min() > 1e-6, encoder


def test_elbo_scores_each_weibull_draw_then_averages():
    """L_X and the KL are the mean over draws of their value at each draw (float64 reference with scipy);
    scoring the averaged theta instead (the old estimate) gives a different, biased number."""
    net = _with_isolated_nodes()
    g = GraphTensors.from_network(net)
    cfg = WGAEConfig(encoder="gcn", topics=(3, 2), hidden=8, samples=6, decoder="exact")
    model = WGAE(net.n_words, cfg, seed=1)
    terms = wm.elbo_terms(model, g, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # the GCN encoder draws nothing: the same uniforms follow
    params = model.encode(g)
    eps = [torch.rand((6, 8, k.shape[-1]), generator=gen).clamp(1e-10, 1 - 1e-7) for k, _ in params]
    draws = [(lam.double() * (-torch.log1p(-e.double())) ** (1 / k.double())).clamp(2.2e-10, 1000)
             for (k, lam), e in zip(params, eps, strict=True)]
    x = net.dense_counts()
    phi1 = model.phi[0].double()
    per_draw = [poisson.logpmf(x, (d @ phi1.T).detach().numpy()).sum() for d in draws[0]]
    assert np.isclose(float(terms["words"]), np.mean(per_draw), rtol=1e-5)
    mean_theta = draws[0].mean(0)
    assert not np.isclose(poisson.logpmf(x, (mean_theta @ phi1.T).detach().numpy()).sum(), np.mean(per_draw),
                          rtol=1e-3)
    from tenfold.wgae.weibull import kl_weibull_gamma

    (k1, l1), (k2, l2) = [(k.double(), lam.double()) for k, lam in params]
    kl = [float(kl_weibull_gamma(k1, l1, (d2 @ model.phi[1].double().T).clamp_min(1e-10), 1.0).sum()
                + kl_weibull_gamma(k2, l2, torch.ones_like(k2), 1.0).sum()) for d2 in draws[1]]
    assert np.isclose(float(terms["kl"]), np.mean(kl), rtol=1e-4)


def test_training_resumes_from_a_checkpoint_to_the_uninterrupted_result(small_net, tmp_path, monkeypatch):
    cfg = WGAEConfig(encoder="gat", topics=(6, 2), epochs=6, steps_per_epoch=2, samples=2, hidden=8, heads=2,
                     decoder="exact", eval_every=1)

    def val(model, g):
        return float(model.embed(g)[0].sum())

    whole = train_wgae(small_net, cfg, seed=3, validate=val)
    calls = {"n": 0}
    real = wm.tlasgr_update

    def crash_at_four(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(wm, "tlasgr_update", crash_at_four)
    with pytest.raises(KeyboardInterrupt):
        train_wgae(small_net, cfg, seed=3, validate=val, checkpoint=tmp_path, checkpoint_every=2)
    monkeypatch.setattr(wm, "tlasgr_update", real)
    resumed = train_wgae(small_net, cfg, seed=3, validate=val, checkpoint=tmp_path, checkpoint_every=2)
    assert [r["epoch"] for r in resumed.history] == list(range(6))
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert resumed.best_epoch == whole.best_epoch and resumed.history == whole.history


def test_tlasgr_keeps_topics_on_the_simplex(small_net):
    model = WGAE(small_net.n_words, WGAEConfig(topics=(6, 2)))
    g = GraphTensors.from_network(small_net)
    theta = model.embed(g)
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
