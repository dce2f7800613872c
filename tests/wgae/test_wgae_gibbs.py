"""GPGBN generative model and Gibbs sampler: augmentation primitives, exact likelihood, planted recovery."""

from __future__ import annotations

import numpy as np
import pytest

from tenfold.wgae.evaluate import auc_ap, random_topic_match, split_links, topic_match
from tenfold.wgae.gpgbn import (
    GibbsConfig,
    crt,
    gibbs,
    link_rate,
    log_likelihood,
    multinomial_split,
    sample,
    segment_sum,
    zero_truncated_poisson,
)


def test_crt_mean_is_sum_of_seating_probabilities():
    rng = np.random.default_rng(0)
    n, a = np.full(20_000, 7), np.full(20_000, 1.5)
    expected = sum(1.5 / (1.5 + i) for i in range(7))
    assert abs(crt(n, a, rng).mean() - expected) < 0.03
    assert crt(np.array([0, 1, 3]), np.array([2.0, 2.0, 1e6]), rng).tolist() == [0.0, 1.0, 3.0]


def test_zero_truncated_poisson_is_positive_with_the_right_mean():
    rng = np.random.default_rng(1)
    for lam in (1e-9, 0.05, 1.0, 6.0):
        m = zero_truncated_poisson(np.full(50_000, lam), rng)
        assert m.min() >= 1
        assert abs(m.mean() - lam / -np.expm1(-lam)) < 0.03 * max(lam, 1)


def test_multinomial_split_preserves_counts_and_proportions():
    rng = np.random.default_rng(2)
    n = np.array([5, 0, 1000])
    w = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 2.0, 7.0]])
    out = multinomial_split(n, w, rng)
    assert out.sum(1).tolist() == [5, 0, 1000] and out[0, 0] == 5
    assert abs(out[2, 2] / 1000 - 0.7) < 0.05
    assert np.allclose(segment_sum(np.array([0, 2, 0]), np.eye(3), 3), [[1, 0, 1], [0, 0, 0], [0, 1, 0]])


def test_log_likelihood_non_edge_identity_equals_dense_pair_sum(small_net):
    rng = np.random.default_rng(3)
    net = small_net
    theta = [rng.gamma(1.0, 1.0, size=(net.n_nodes, k)) for k in (6, 2)]
    u = [rng.gamma(1.0, 0.01, size=k) for k in (6, 2)]
    phi = [rng.dirichlet(np.ones(50), 6).T, rng.dirichlet(np.ones(6), 2).T]
    ii, jj = np.triu_indices(net.n_nodes, 1)
    rate = link_rate(theta, u, np.stack([ii, jj]))
    adj = np.zeros((net.n_nodes, net.n_nodes), bool)
    adj[net.edges[0], net.edges[1]] = True
    a = adj[ii, jj]
    links = np.log(-np.expm1(-rate[a])).sum() - rate[~a].sum()
    lam = (phi[0] @ theta[0].T)  # (V, N) dense
    x = np.zeros_like(lam)
    x[net.cols, net.rows] = net.vals
    words = (x * np.log(lam)).sum() - lam.sum()
    assert np.isclose(log_likelihood(net, phi, theta, u), words + links, rtol=1e-9)


def test_sample_draws_documents_and_links_with_requested_scale():
    net = sample(400, 80, (8, 3), doc_length=50.0, mean_degree=10.0, seed=0)
    assert net.synthetic and net.labels.shape == (400,)
    assert 25 < net.vals.sum() / 400 < 80
    assert 0.5 * 400 * 10 / 2 < net.n_edges < 1.2 * 400 * 10 / 2  # saturation only lowers the count
    assert (net.edges[0] < net.edges[1]).all()
    assert [p.shape for p in net.truth["phi"]] == [(80, 8), (8, 3)]


def test_gibbs_recovers_planted_topics_and_links_on_a_small_gpfa_network():
    net = sample(200, 60, (5,), doc_length=80.0, mean_degree=8.0, eta=0.05, seed=4)
    split = split_links(net, 0.05, 0.15, seed=0)
    fit = gibbs(net.with_edges(split.train), GibbsConfig(topics=(5,), iterations=120, burn_in=60), seed=0)
    true = net.truth["phi"][0]
    match = topic_match(fit.phi[0], true)
    assert match > 0.85 and match > random_topic_match(true, 5, 0.01) + 0.3
    auc, _ = auc_ap(fit.link_probability(split.test_pos), fit.link_probability(split.test_neg))
    assert auc > 0.75
    assert fit.trace[-1] > fit.trace[0]  # the chain climbs from its random start


def test_gibbs_runs_multilayer_and_rejects_bad_burn_in(small_net):
    fit = gibbs(small_net, GibbsConfig(topics=(6, 2), iterations=6, burn_in=2), seed=0)
    assert [t.shape for t in fit.theta] == [(120, 6), (120, 2)]
    assert np.allclose([p.sum(0) for p in fit.phi][0], 1.0)
    from tenfold.core.errors import InputError

    with pytest.raises(InputError, match="burn_in"):
        gibbs(small_net, GibbsConfig(iterations=5, burn_in=5))
