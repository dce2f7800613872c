"""GPFA / GPGBN: the generative model of a document network and its Gibbs sampler.

Generative model (T layers; GPFA is T = 1), node j, word v, layer t (research note B.2):
    phi_k^(t) ~ Dir(eta)                                   topics (columns of Phi^(t), V_t x K_t)
    theta_j^(T) ~ Gam(r, 1/c_j^(T)),  theta_j^(t) ~ Gam(Phi^(t+1) theta_j^(t+1), 1/c_j^(t))
    x_vj ~ Pois([Phi^(1) theta_j^(1)]_v)                   word counts
    m_ij ~ Pois(sum_t sum_k theta_ik^(t) u_k^(t) theta_jk^(t)),  A_ij = 1(m_ij > 0)   Bernoulli-Poisson link
    u_k^(t) ~ Gam(a0, 1/b0),  c_j^(t) ~ Gam(a0, 1/b0)

The sampler works on the observed links only (a (2, E) list, i < j): the non-edge part of every
conditional needs only column sums, sum_{i != j} theta_ik = S_k - theta_jk, never an N x N array.
Links couple the nodes, so a sweep visits them one at a time (as PyDPM's gpgbn.py does), keeping the
column sums current (S_k <- S_k - theta_old + theta_new): O(N sum_t K_t) per sweep, compiled with
numba when it is installed (the same function runs as plain Python otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from tenfold.core.errors import InputError
from tenfold.core.progress import progress
from tenfold.data.docgraph import check_generator_sizes
from tenfold.data.planetoid import DocumentNetwork, build_network

try:
    from numba import njit
except ImportError:  # the same per-node loop as plain Python: identical maths, about 50x slower
    def njit(*args, **kwargs):
        return args[0] if args and callable(args[0]) else (lambda f: f)

TINY = 1e-12


@dataclass(frozen=True)
class GibbsConfig:
    """Gibbs settings. Priors follow PyDPM's GPGBN (eta = 0.01, gamma(1, 1) on u and c, r = 1/K_T)."""

    topics: tuple[int, ...] = (16, 4)  # K_t per layer, bottom first
    eta: float = 0.01
    a0: float = 1.0
    b0: float = 1.0
    iterations: int = 300
    burn_in: int = 150


@dataclass
class GibbsFit:
    """Posterior means (over the kept samples) and the joint log-likelihood trace."""

    phi: list[np.ndarray]  # (V_t, K_t), columns on the simplex
    theta: list[np.ndarray]  # (N, K_t)
    u: list[np.ndarray]  # (K_t,)
    trace: list[float] = field(default_factory=list)
    config: GibbsConfig = field(default_factory=GibbsConfig)

    def embedding(self) -> np.ndarray:
        """Node representation: all layers' theta side by side, (N, sum K_t)."""
        return np.concatenate(self.theta, axis=1)

    def link_probability(self, pairs: np.ndarray) -> np.ndarray:
        return 1.0 - np.exp(-link_rate(self.theta, self.u, pairs))


# ---------------------------------------------------------------- augmentation primitives


def segment_sum(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """out[g] = sum of values[index == g] (rows), via one sparse product."""
    ones = sp.csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))), shape=(n, len(index)))
    return np.asarray(ones @ values)


def multinomial_split(n: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split integer counts n (m,) over K categories with probabilities proportional to weights (m, K)."""
    w = np.ascontiguousarray(weights, dtype=np.float64)
    counts = np.asarray(n, dtype=np.int64)
    return _multinomial_rows(counts, w, int(rng.integers(2**31 - 1)))


@njit(cache=True)
def _multinomial_rows(n, w, seed):
    """Row by row: a count falls in category k with probability w_k / sum(w) (uniform if the row is all
    zero), drawn as conditional binomials; one categorical draw for the common count of one."""
    np.random.seed(seed)
    rows, k_max = w.shape
    out = np.zeros((rows, k_max))
    for r in range(rows):
        left = n[r]
        if left == 0:
            continue
        total = 0.0
        for k in range(k_max):
            total += w[r, k]
        if total <= 0:
            for _ in range(left):
                out[r, np.random.randint(k_max)] += 1
            continue
        if left == 1:
            u, acc = np.random.random() * total, 0.0
            for k in range(k_max):
                acc += w[r, k]
                if u < acc or k == k_max - 1:
                    out[r, k] = 1
                    break
            continue
        rest = total
        for k in range(k_max):
            if left == 0:
                break
            take = left if k == k_max - 1 or rest <= 0 else np.random.binomial(left, min(1.0, w[r, k] / rest))
            out[r, k] = take
            left -= take
            rest -= w[r, k]
    return out


def crt(n: np.ndarray, a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Chinese restaurant table counts l ~ CRT(n, a) = sum_{i=1..n} Bernoulli(a / (a + i - 1)), elementwise."""
    n = np.asarray(n, dtype=np.int64)
    shape = n.shape
    nf, af = n.ravel(), np.maximum(np.broadcast_to(a, shape).ravel(), TINY)
    nz = np.flatnonzero(nf > 0)
    counts = nf[nz]
    owner = np.repeat(np.arange(len(nz)), counts)
    seat = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # 0..n-1 per entry
    a_own = af[nz][owner]
    tables = np.bincount(owner, weights=rng.random(len(owner)) < a_own / (a_own + seat), minlength=len(nz))
    out = np.zeros(nf.shape)
    out[nz] = tables
    return out.reshape(shape)


def zero_truncated_poisson(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """m ~ Pois(lam) conditioned on m > 0, exactly: in a rate-lam Poisson process on [0, 1] with at least one
    event, the first event time is t1 ~ Exp(lam) truncated to [0, 1] and the rest are Pois(lam (1 - t1))."""
    lam = np.maximum(np.asarray(lam, dtype=np.float64), TINY)
    rest = lam + np.log1p(rng.random(lam.shape) * np.expm1(-lam))  # lam (1 - t1), >= 0
    return 1.0 + rng.poisson(np.maximum(rest, 0.0))


def link_rate(theta: list[np.ndarray], u: list[np.ndarray], pairs: np.ndarray) -> np.ndarray:
    """sum_t sum_k theta_ik u_k theta_jk for each pair (column of pairs)."""
    i, j = pairs
    return sum((th[i] * uu * th[j]).sum(1) for th, uu in zip(theta, u, strict=True))


def log_likelihood(net: DocumentNetwork, phi, theta, u) -> float:
    """log p(X, A | Phi, Theta, u) up to constants, exact over all node pairs in O(NK + E)."""
    rate_w = (phi[0][net.cols] * theta[0][net.rows]).sum(1)
    words = float((net.vals * np.log(np.maximum(rate_w, TINY))).sum() - theta[0].sum())
    pos = link_rate(theta, u, net.edges)
    all_pairs = sum(float((uu * (th.sum(0) ** 2 - (th**2).sum(0))).sum()) / 2 for th, uu in zip(theta, u, strict=True))
    links = float(np.log(np.maximum(-np.expm1(-pos), TINY)).sum() - (all_pairs - pos.sum()))
    return words + links


def _dirichlet_columns(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    g = np.maximum(rng.gamma(alpha), TINY)
    return g / g.sum(0, keepdims=True)


# ---------------------------------------------------------------- the generative model


def sample(n_nodes: int = 800, n_words: int = 400, topics: tuple[int, ...] = (16, 4), doc_length: float = 60.0,
           mean_degree: float = 8.0, eta: float = 0.05, top_scale: float = 3.0, seed: int = 0) -> DocumentNetwork:
    """Draw a document network from GPGBN with known Phi, Theta, u (labels = argmax of the top layer).

    Rates: 1/c^(T) = top_scale, 1/c^(t) = 1 in between and 1/c^(1) = doc_length / top_scale, so documents
    have doc_length words on average and the lower layers keep small gamma shapes (identifiable topics).
    Each layer's u_k^(t) ~ Gam(1, 1) draws share a scale chosen so that the layer contributes
    n_nodes * mean_degree / (2 T) links in expectation (before 1 - exp saturation).
    """
    topics = tuple(int(k) for k in topics)
    check_generator_sizes(n_nodes, n_words, topics, doc_length, mean_degree)
    if not (math.isfinite(eta) and eta > 0 and math.isfinite(top_scale) and top_scale > 0):
        raise InputError(f"eta and top_scale must be finite and positive, got {eta}, {top_scale}")
    rng = np.random.default_rng(seed)
    sizes = [n_words, *topics[:-1]]
    phi = [_dirichlet_columns(np.full((v, k), eta), rng) for v, k in zip(sizes, topics, strict=True)]
    theta: list[np.ndarray] = [None] * len(topics)  # type: ignore[list-item]
    T = len(topics)
    theta[-1] = rng.gamma(1.0 / topics[-1], top_scale if T > 1 else doc_length, size=(n_nodes, topics[-1]))
    for t in range(T - 2, -1, -1):
        scale = doc_length / top_scale if t == 0 else 1.0
        theta[t] = rng.gamma(np.maximum(theta[t + 1] @ phi[t + 1].T, TINY), scale)
    u = []
    for th, k in zip(theta, topics, strict=True):
        draw = rng.gamma(1.0, 1.0, size=k)
        expected = float((draw * (th.sum(0) ** 2 - (th**2).sum(0))).sum()) / 2
        u.append(draw * n_nodes * mean_degree / (2 * T) / max(expected, TINY))
    edges = _sample_links(theta, u, n_nodes, rng)
    rows, cols, vals = _sample_words(phi[0], theta[0], rng)
    counts = sp.coo_matrix((vals, (rows, cols)), shape=(n_nodes, n_words))
    labels = theta[-1].argmax(1)
    truth = {"phi": phi, "theta": theta, "u": u}
    return build_network(counts, edges, labels, name=f"gpgbn-synthetic-{n_nodes}", n_nodes=n_nodes,
                         synthetic=True, truth=truth)


def _sample_links(theta, u, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unordered pairs {i, j}: per (t, k) draw Pois(u_k S_k^2 / 2) ordered endpoint pairs iid from theta_k / S_k."""
    keys = []
    for th, uu in zip(theta, u, strict=True):
        s = th.sum(0)
        for k in np.flatnonzero(s > 0):
            m = rng.poisson(uu[k] * s[k] ** 2 / 2)
            if m == 0:
                continue
            p = th[:, k] / s[k]
            i, j = rng.choice(n, size=m, p=p), rng.choice(n, size=m, p=p)
            keep = i != j
            keys.append(np.minimum(i, j)[keep] * n + np.maximum(i, j)[keep])
    key = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
    return np.stack([key // n, key % n]).astype(np.int64)


def _sample_words(phi: np.ndarray, theta: np.ndarray, rng: np.random.Generator):
    """x_vj ~ Pois([Phi theta_j]_v) as per-(doc, topic) Poisson token counts, then a word per token."""
    n_vk = rng.poisson(theta)  # (N, K) tokens per doc and topic
    doc, topic = np.nonzero(n_vk)
    reps = n_vk[doc, topic]
    doc, topic = np.repeat(doc, reps), np.repeat(topic, reps)
    word = np.empty(len(doc), dtype=np.int64)
    cdf = np.cumsum(phi, axis=0)
    for k in np.unique(topic):
        sel = topic == k
        word[sel] = np.minimum(np.searchsorted(cdf[:, k], rng.random(sel.sum()) * cdf[-1, k]), phi.shape[0] - 1)
    key, vals = np.unique(doc * phi.shape[0] + word, return_counts=True)
    return key // phi.shape[0], key % phi.shape[0], vals.astype(np.float64)


# ---------------------------------------------------------------- Gibbs sampler


@dataclass
class GibbsState:
    """One state of the chain. theta is packed (N, sum_t K_t): layer t is columns offsets[t]:offsets[t+1]."""

    phi: list[np.ndarray]  # (V_t, K_t)
    theta: np.ndarray  # (N, sum K_t)
    c: np.ndarray  # (N, T): gamma rate of theta_j^(t)
    u: np.ndarray  # (sum K_t,): link weight u_k^(t)
    offsets: np.ndarray  # (T + 1,)

    def layer(self, t: int) -> np.ndarray:
        return self.theta[:, self.offsets[t]:self.offsets[t + 1]]

    def layers(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(theta per layer, u per layer), as views."""
        o = self.offsets
        return ([self.layer(t) for t in range(len(o) - 1)], [self.u[o[t]:o[t + 1]] for t in range(len(o) - 1)])


def initial_state(net: DocumentNetwork, topics: tuple[int, ...], rng: np.random.Generator) -> GibbsState:
    """Random topics, theta ~ Gam(1, doc length / K), u set so the expected link count matches the data."""
    k_t, n = list(topics), net.n_nodes
    sizes = [net.n_words, *k_t[:-1]]
    doc_len = np.bincount(net.rows, weights=net.vals, minlength=n)
    phi = [_dirichlet_columns(np.ones((a, b)), rng) for a, b in zip(sizes, k_t, strict=True)]
    theta = np.concatenate([rng.gamma(1.0, (doc_len.mean() + 1) / k, size=(n, k)) for k in k_t], axis=1)
    offsets = np.cumsum([0, *k_t])
    u = np.empty(offsets[-1])
    for t in range(len(k_t)):
        th = theta[:, offsets[t]:offsets[t + 1]]
        mass = float((th.sum(0) ** 2 - (th**2).sum(0)).sum()) / 2
        u[offsets[t]:offsets[t + 1]] = max(net.n_edges, 1) / len(k_t) / max(mass, TINY)
    return GibbsState(phi, theta, np.ones((n, len(k_t))), u, offsets)


@njit(cache=True)
def _crt(n: int, a: float) -> int:
    """l ~ CRT(n, a): sum over seats i = 0..n-1 of Bernoulli(a / (a + i))."""
    tables = 0
    for i in range(n):
        if np.random.random() < a / (a + i):
            tables += 1
    return tables


@njit(cache=True)
def _node_sweep(theta, counts, c, u, phi_up, offsets, r, a0, b0, learn_c, seed):
    """Visit nodes j = 0..N-1 in turn; for each, draw its block (tables, theta_j^(T..1), c_j) from its
    conditional given every other node's *current* theta (running column sums S).

    counts (N, sum K_t): latent counts per node (layer 1: words + links; upper layers: links only);
    phi_up[t] = Phi^(t) (K_{t-1} x K_t) for t >= 1. Returns the tables split over upper topics (for Phi^(t))."""
    np.random.seed(seed)
    n_nodes, total = theta.shape
    layers = offsets.shape[0] - 1
    col = theta.sum(axis=0)  # S_k, kept current as nodes change
    split_counts = np.zeros(phi_up.shape)
    expo = np.empty(total)
    cnt = np.empty(total)
    for j in range(n_nodes):
        for t in range(layers):  # exposures: links u_k sum_{i != j} theta_ik (+ words at layer 1, + PGBN term)
            for k in range(offsets[t], offsets[t + 1]):
                expo[k] = u[k] * (col[k] - theta[j, k]) + (1.0 if t == 0 else 0.0)
                cnt[k] = counts[j, k]
            if t > 0:
                for kp in range(offsets[t + 1] - offsets[t]):
                    acc = 0.0
                    for k in range(offsets[t] - offsets[t - 1]):
                        acc += phi_up[t, k, kp] * math.log1p(expo[offsets[t - 1] + k] / c[j, t - 1])
                    expo[offsets[t] + kp] += acc
        for t in range(layers - 1):  # upward: tables l ~ CRT(n^(t), Phi^(t+1) theta^(t+1)), split over upper topics
            k_up = offsets[t + 2] - offsets[t + 1]
            for k in range(offsets[t + 1] - offsets[t]):
                n_k = int(cnt[offsets[t] + k])
                if n_k == 0:
                    continue
                a = 0.0
                for kp in range(k_up):
                    a += phi_up[t + 1, k, kp] * theta[j, offsets[t + 1] + kp]
                left = _crt(n_k, max(a, 1e-300))
                rest = a
                for kp in range(k_up):  # multinomial by conditional binomials
                    if left == 0:
                        break
                    w = phi_up[t + 1, k, kp] * theta[j, offsets[t + 1] + kp]
                    take = left if kp == k_up - 1 or rest <= 0 else np.random.binomial(left, min(1.0, w / rest))
                    rest -= w
                    left -= take
                    split_counts[t + 1, k, kp] += take
                    cnt[offsets[t + 1] + kp] += take
        for t in range(layers - 1, -1, -1):  # downward: theta^(t)_j | shape from above, counts, exposure
            shape_sum, theta_sum = 0.0, 0.0
            for k in range(offsets[t + 1] - offsets[t]):
                if t == layers - 1:
                    shape = r
                else:
                    shape = 0.0
                    for kp in range(offsets[t + 2] - offsets[t + 1]):
                        shape += phi_up[t + 1, k, kp] * theta[j, offsets[t + 1] + kp]
                i = offsets[t] + k
                new = max(np.random.gamma(shape + cnt[i]) / (c[j, t] + expo[i]), 1e-12)
                col[i] += new - theta[j, i]
                theta[j, i] = new
                shape_sum += shape
                theta_sum += new
            if learn_c:
                c[j, t] = np.random.gamma(a0 + shape_sum) / (b0 + theta_sum)
    return split_counts


@dataclass(frozen=True)
class _Data:
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    edges: np.ndarray
    n: int
    v: int


def _data(net: DocumentNetwork) -> _Data:
    vals = np.rint(net.vals)  # non-integer features (TF-IDF) are rounded to counts
    keep = vals > 0
    return _Data(net.rows[keep], net.cols[keep], vals[keep], net.edges, net.n_nodes, net.n_words)


def gibbs_sweep(state: GibbsState, data: _Data, config: GibbsConfig, rng: np.random.Generator,
                fixed: frozenset = frozenset()) -> None:
    """One Gibbs sweep, in place. `fixed` names globals held at their current values ('phi', 'u', 'c')."""
    o, T = state.offsets, len(state.offsets) - 1
    th0 = state.layer(0)
    # words -> x_vkj ~ Mult(x_vj; phi_vk theta_kj)
    xk = multinomial_split(data.vals, state.phi[0][data.cols] * th0[data.rows], rng)
    counts = np.zeros_like(state.theta)
    counts[:, o[0]:o[1]] = segment_sum(data.rows, xk, data.n)
    # links -> m_ij ~ ZTP(sum_t sum_k theta_ik u_k theta_jk), split over (t, k)
    i, j = data.edges
    per_edge = state.theta[i] * state.u * state.theta[j]
    mk = multinomial_split(zero_truncated_poisson(per_edge.sum(1), rng), per_edge, rng)
    counts += segment_sum(i, mk, data.n) + segment_sum(j, mk, data.n)
    k_max = int(np.diff(o).max())
    phi_up = np.zeros((T, k_max, k_max))
    for t in range(1, T):
        phi_up[t, :o[t] - o[t - 1], :o[t + 1] - o[t]] = state.phi[t]
    split = _node_sweep(state.theta, counts, state.c, state.u, phi_up, o, 1.0 / (o[T] - o[T - 1]), config.a0,
                        config.b0, "c" not in fixed, int(rng.integers(2**31 - 1)))
    if "phi" not in fixed:  # phi_k^(t) ~ Dir(eta + latent counts)
        state.phi[0] = _dirichlet_columns(config.eta + segment_sum(data.cols, xk, data.v), rng)
        for t in range(1, T):
            state.phi[t] = _dirichlet_columns(config.eta + split[t, :o[t] - o[t - 1], :o[t + 1] - o[t]], rng)
    if "u" not in fixed:  # u_k^(t) ~ Gam(a0 + sum m_.k, rate b0 + sum_{i<j} theta_ik theta_jk)
        mass = (state.theta.sum(0) ** 2 - (state.theta**2).sum(0)) / 2
        state.u = rng.gamma(config.a0 + mk.sum(0)) / (config.b0 + mass)


def gibbs(net: DocumentNetwork, config: GibbsConfig = GibbsConfig(), seed: int = 0, init: GibbsState | None = None,
          fixed: frozenset = frozenset()) -> GibbsFit:
    """Fit GPGBN by Gibbs sampling with the closed-form conditionals; returns posterior means.

    `init` starts the chain from a given state (e.g. known topics) and `fixed` holds some of its
    globals ('phi', 'u', 'c') fixed: inference of theta under known topics and link weights.
    """
    if config.burn_in >= config.iterations:
        raise InputError(f"burn_in ({config.burn_in}) must be smaller than iterations ({config.iterations})")
    unknown = set(fixed) - {"phi", "u", "c"}
    if unknown:
        raise InputError(f"fixed may name 'phi', 'u' and 'c', got {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    data = _data(net)
    state = init if init is not None else initial_state(net, config.topics, rng)
    sums = {"phi": [np.zeros_like(p) for p in state.phi], "theta": np.zeros_like(state.theta),
            "u": np.zeros_like(state.u)}
    kept, trace = 0, []
    for it in progress(range(config.iterations), desc="gibbs"):
        gibbs_sweep(state, data, config, rng, frozenset(fixed))
        if it % 10 == 0 or it == config.iterations - 1:
            trace.append(log_likelihood(net, state.phi, *state.layers()))
        if it >= config.burn_in:
            kept += 1
            for acc, x in zip(sums["phi"], state.phi, strict=True):
                acc += x
            sums["theta"] += state.theta
            sums["u"] += state.u
    o = state.offsets
    T = len(o) - 1
    theta = sums["theta"] / kept
    u = sums["u"] / kept
    return GibbsFit([p / kept for p in sums["phi"]], [theta[:, o[t]:o[t + 1]] for t in range(T)],
                    [u[o[t]:o[t + 1]] for t in range(T)], trace, config)
