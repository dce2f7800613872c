"""The Gibbs schedule is valid: on 20 linked nodes its stationary statistics match a brute-force
Metropolis sampler of the exact posterior (no augmentation, dense N x N likelihood); a parallel
(Jacobi) update of the same conditionals, the old schedule, does not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from tenfold.data.planetoid import build_network
from tenfold.wgae.gpgbn import (
    GibbsConfig,
    GibbsState,
    _data,
    gibbs_sweep,
    multinomial_split,
    segment_sum,
    zero_truncated_poisson,
)

numba = pytest.importorskip("numba")

N, V = 20, 8


@numba.njit(cache=True)
def _node_logpost(th1, th2, j, phi1, phi2, x, adj, u1, u2, r, c1, c2):
    """log p(theta_j^(1), theta_j^(2) | rest) + log-Jacobian of the log-scale walk, from the dense model:
    theta^(2) ~ Gam(r, c2), theta^(1) ~ Gam(Phi^(2) theta^(2), c1), x ~ Pois(Phi^(1) theta^(1)),
    A_ij ~ Bernoulli(1 - exp(-sum_t sum_k theta_ik u_k theta_jk)); T = 1 when phi2 has no columns."""
    k1, k2 = th1.shape[1], th2.shape[1]
    lp = 0.0
    for k in range(k2):
        lp += r * np.log(th2[j, k]) - c2 * th2[j, k]
    for k in range(k1):
        a = r
        if k2 > 0:
            a = 0.0
            for kp in range(k2):
                a += phi2[k, kp] * th2[j, kp]
            lp += a * np.log(c1) - math.lgamma(a)
        lp += a * np.log(th1[j, k]) - c1 * th1[j, k]
    for v in range(phi1.shape[0]):
        lam = 0.0
        for k in range(k1):
            lam += phi1[v, k] * th1[j, k]
        lp += x[j, v] * np.log(lam) - lam
    for i in range(th1.shape[0]):
        if i == j:
            continue
        rate = 0.0
        for k in range(k1):
            rate += th1[i, k] * u1[k] * th1[j, k]
        for k in range(k2):
            rate += th2[i, k] * u2[k] * th2[j, k]
        lp += np.log(-np.expm1(-rate)) if adj[i, j] else -rate
    return lp


@numba.njit(cache=True)
def _metropolis(th1, th2, sweeps, phi1, phi2, x, adj, u1, u2, r, c1, c2, step, seed):
    """Random-walk Metropolis on log theta, one node's block at a time; returns S^(t)_k per sweep."""
    np.random.seed(seed)
    k1, k2 = th1.shape[1], th2.shape[1]
    out = np.empty((sweeps, k1 + k2))
    for s in range(sweeps):
        for j in range(th1.shape[0]):
            old1, old2 = th1[j].copy(), th2[j].copy()
            before = _node_logpost(th1, th2, j, phi1, phi2, x, adj, u1, u2, r, c1, c2)
            for k in range(k1):
                th1[j, k] = old1[k] * np.exp(step * np.random.standard_normal())
            for k in range(k2):
                th2[j, k] = old2[k] * np.exp(step * np.random.standard_normal())
            after = _node_logpost(th1, th2, j, phi1, phi2, x, adj, u1, u2, r, c1, c2)
            if np.log(np.random.random()) >= after - before:
                th1[j], th2[j] = old1, old2
        for k in range(k1):
            out[s, k] = th1[:, k].sum()
        for k in range(k2):
            out[s, k1 + k] = th2[:, k].sum()
    return out


def _problem(topics, u, theta_scale, c, seed=0):
    """Known topics, link weights u and rates c per layer; theta drawn at `theta_scale` per layer."""
    rng = np.random.default_rng(seed)
    k1 = topics[0]
    phi = [rng.dirichlet(np.full(V, 0.3), k1).T]
    if len(topics) > 1:
        phi.append(rng.dirichlet(np.ones(k1), topics[1]).T)
    theta = np.concatenate([rng.gamma(1.0, s, size=(N, k)) for s, k in zip(theta_scale, topics, strict=True)], 1)
    u = np.concatenate([np.full(k, w) for w, k in zip(u, topics, strict=True)])
    rate = (theta * u) @ theta.T
    adj = np.triu(rng.random((N, N)) < -np.expm1(-rate), 1)
    x = rng.poisson(theta[:, :k1] @ phi[0].T * 3)
    net = build_network(sp.coo_matrix(x), np.argwhere(adj).T)
    offsets = np.cumsum([0, *topics])
    state = GibbsState([p.copy() for p in phi], theta.copy(), np.tile(np.asarray(c, float), (N, 1)), u, offsets)
    return net, state, x, adj | adj.T


def _brute_force(net, state, x, adj, sweeps=60_000):
    o = state.offsets
    th1, th2 = state.theta[:, :o[1]].copy(), state.theta[:, o[1]:].copy()
    phi2 = state.phi[1] if len(state.phi) > 1 else np.zeros((o[1], 0))
    r = 1.0 / (o[-1] - o[-2])
    u1, u2 = state.u[:o[1]].copy(), state.u[o[1]:].copy()
    c1, c2 = state.c[0, 0], state.c[0, -1]
    sums = _metropolis(th1, th2, sweeps, state.phi[0], phi2, x.astype(np.float64), adj, u1, u2, r, c1, c2, 0.4, 1)
    return sums[sweeps // 10:]


def _ours(net, state, sweeps=3000, seed=2):
    rng, data = np.random.default_rng(seed), _data(net)
    out = []
    for _ in range(sweeps):
        gibbs_sweep(state, data, GibbsConfig(topics=tuple(np.diff(state.offsets))), rng, frozenset({"phi", "u", "c"}))
        out.append(state.theta.sum(0))
    return np.array(out[sweeps // 10:])


def _jacobi(net, state, sweeps=3000, seed=2):
    """The old schedule (GPFA): every node's theta drawn at once from conditionals on the previous state."""
    rng, data = np.random.default_rng(seed), _data(net)
    th, u, r, out = state.theta.copy(), state.u, 1.0 / state.theta.shape[1], []
    for _ in range(sweeps):
        xk = multinomial_split(data.vals, state.phi[0][data.cols] * th[data.rows], rng)
        counts = segment_sum(data.rows, xk, N)
        i, j = data.edges
        per_edge = th[i] * u * th[j]
        mk = multinomial_split(zero_truncated_poisson(per_edge.sum(1), rng), per_edge, rng)
        counts += segment_sum(i, mk, N) + segment_sum(j, mk, N)
        th = np.maximum(rng.gamma(r + counts) / (state.c + 1.0 + u * (th.sum(0) - th)), 1e-12)
        out.append(th.sum(0))
    return np.array(out[sweeps // 10:])


def test_sequential_gibbs_matches_brute_force_metropolis_and_jacobi_does_not():
    net, state, x, adj = _problem((2,), u=(100.0,), theta_scale=(0.03,), c=(1.0,))
    assert 15 <= net.n_edges <= 60  # sparse: most pairs are non-links that couple every node to the rest
    ref = _brute_force(net, state, x, adj)
    ours = _ours(net, GibbsState(list(state.phi), state.theta.copy(), state.c.copy(), state.u.copy(), state.offsets))
    jac = _jacobi(net, state)
    mean_err = np.abs(ours.mean(0) / ref.mean(0) - 1)
    sd_ratio, jac_sd_ratio = ours.std(0) / ref.std(0), jac.std(0) / ref.std(0)
    assert mean_err.max() < 0.06, (ours.mean(0), ref.mean(0))
    assert np.abs(sd_ratio - 1).max() < 0.12, sd_ratio
    assert jac_sd_ratio.mean() > 1.15, jac_sd_ratio  # the parallel update inflates the spread of S_k


@pytest.mark.slow
def test_two_layer_gibbs_matches_brute_force_metropolis():
    """CRT tables, PGBN exposures and links on both layers, against the dense two-layer posterior."""
    net, state, x, adj = _problem((3, 2), u=(20.0, 0.1), theta_scale=(0.07, 1.0), c=(10.0, 1.0), seed=4)
    ref = _brute_force(net, state, x, adj, sweeps=80_000)
    ours = _ours(net, state, sweeps=4000)
    assert np.abs(ours.mean(0) / ref.mean(0) - 1).max() < 0.1, (ours.mean(0), ref.mean(0))
    assert np.abs(ours.std(0) / ref.std(0) - 1).max() < 0.15, (ours.std(0), ref.std(0))
