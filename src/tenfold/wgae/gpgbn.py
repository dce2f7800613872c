"""GPFA / GPGBN: the generative model of a document network and its Gibbs sampler.

Generative model (T layers; GPFA is T = 1), node j, word v, layer t (research note B.2):
    phi_k^(t) ~ Dir(eta)                                   topics (columns of Phi^(t), V_t x K_t)
    theta_j^(T) ~ Gam(r, 1/c_j^(T)),  theta_j^(t) ~ Gam(Phi^(t+1) theta_j^(t+1), 1/c_j^(t))
    x_vj ~ Pois([Phi^(1) theta_j^(1)]_v)                   word counts
    m_ij ~ Pois(sum_t sum_k theta_ik^(t) u_k^(t) theta_jk^(t)),  A_ij = 1(m_ij > 0)   Bernoulli-Poisson link
    u_k^(t) ~ Gam(a0, 1/b0),  c_j^(t) ~ Gam(a0, 1/b0)

The sampler works on the observed links only (a (2, E) list, i < j): the non-edge part of every
conditional needs only column sums, sum_{i != j} theta_ik = S_k - theta_jk, never an N x N array.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.stats import poisson

from tenfold.core.errors import InputError
from tenfold.core.progress import progress
from tenfold.data.planetoid import DocumentNetwork, build_network

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
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum(1, keepdims=True)
    p = np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / w.shape[1])
    return rng.multinomial(np.asarray(n, dtype=np.int64), p).astype(np.float64)


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
    """m ~ Pois(lam) conditioned on m > 0, by inversion: U ~ U(exp(-lam), 1), m = F^-1(U)."""
    lam = np.asarray(lam, dtype=np.float64)
    lo = np.exp(-lam)
    u = lo + (1.0 - lo) * rng.random(lam.shape)
    m = poisson.ppf(u, np.maximum(lam, TINY))
    return np.where((lam < 1e-8) | ~np.isfinite(m), 1.0, np.maximum(m, 1.0))


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
    if n_nodes < 2 or n_words < 2 or not topics or min(topics) < 1:
        raise InputError(f"sample needs n_nodes >= 2, n_words >= 2 and topics >= 1, got {n_nodes}, {n_words}, {topics}")
    if doc_length <= 0 or mean_degree < 0 or eta <= 0:
        raise InputError("doc_length and eta must be positive and mean_degree non-negative")
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


def gibbs(net: DocumentNetwork, config: GibbsConfig = GibbsConfig(), seed: int = 0) -> GibbsFit:
    """Fit GPGBN by Gibbs sampling with the closed-form conditionals; returns posterior means.

    All nodes of a layer are updated in parallel given the previous state (as the released code does).
    Non-integer features (TF-IDF) are rounded to counts.
    """
    rng = np.random.default_rng(seed)
    k_t, n, v = list(config.topics), net.n_nodes, net.n_words
    if config.burn_in >= config.iterations:
        raise InputError(f"burn_in ({config.burn_in}) must be smaller than iterations ({config.iterations})")
    vals = np.rint(net.vals)
    keep = vals > 0
    rows, cols, vals = net.rows[keep], net.cols[keep], vals[keep]
    i, j = net.edges
    T = len(k_t)
    sizes = [v, *k_t[:-1]]
    doc_len = np.bincount(rows, weights=vals, minlength=n)
    phi = [_dirichlet_columns(np.ones((a, b)), rng) for a, b in zip(sizes, k_t, strict=True)]
    theta = [rng.gamma(1.0, (doc_len.mean() + 1) / k, size=(n, k)) for k in k_t]
    pair_mass = [float((th.sum(0) ** 2 - (th**2).sum(0)).sum()) / 2 for th in theta]
    u = [np.full(k, max(net.n_edges, 1) / T / max(pm, TINY)) for k, pm in zip(k_t, pair_mass, strict=True)]
    c = [np.ones(n) for _ in k_t]
    r = 1.0 / k_t[-1]
    sums = {"phi": [np.zeros_like(p) for p in phi], "theta": [np.zeros_like(t) for t in theta],
            "u": [np.zeros_like(x) for x in u]}
    kept, trace = 0, []
    for it in progress(range(config.iterations), desc="gibbs"):
        # words -> layer-1 latent counts x_vkj (multinomial augmentation)
        xk = multinomial_split(vals, phi[0][cols] * theta[0][rows], rng)
        phi_counts = [segment_sum(cols, xk, v)]
        counts = [segment_sum(rows, xk, n)]
        # links -> m_ij ~ ZTP, split over (t, k) in proportion to theta_ik u_k theta_jk
        per_edge = np.concatenate([theta[t][i] * u[t] * theta[t][j] for t in range(T)], axis=1)
        m = zero_truncated_poisson(per_edge.sum(1), rng)
        mk = multinomial_split(m, per_edge, rng)
        offs = np.cumsum([0, *k_t])
        link_counts = [mk[:, offs[t]:offs[t + 1]] for t in range(T)]
        node_links = [segment_sum(i, lc, n) + segment_sum(j, lc, n) for lc in link_counts]
        link_exposure = [u[t] * (theta[t].sum(0) - theta[t]) for t in range(T)]  # u_k sum_{i != j} theta_ik
        counts[0] = counts[0] + node_links[0]
        exposure = [1.0 + link_exposure[0]]  # Phi^(1) columns sum to one
        # upward pass: CRT, then split tables over the upper topics
        for t in range(T - 1):
            shape = theta[t + 1] @ phi[t + 1].T  # (N, K_t)
            tables = crt(counts[t], shape, rng)
            jj, kk = np.nonzero(tables)
            split = multinomial_split(tables[jj, kk], phi[t + 1][kk] * theta[t + 1][jj], rng)
            phi_counts.append(segment_sum(kk, split, k_t[t]))
            counts.append(segment_sum(jj, split, n) + node_links[t + 1])
            exposure.append(np.log1p(exposure[t] / c[t][:, None]) @ phi[t + 1] + link_exposure[t + 1])
        phi = [_dirichlet_columns(config.eta + pc, rng) for pc in phi_counts]
        for t in range(T - 1, -1, -1):  # downward: theta^(t) | shape from above, counts, exposure
            shape = np.full((n, k_t[t]), r) if t == T - 1 else theta[t + 1] @ phi[t + 1].T
            theta[t] = np.maximum(rng.gamma(shape + counts[t]) / (c[t][:, None] + exposure[t]), TINY)
            c[t] = rng.gamma(config.a0 + shape.sum(1)) / (config.b0 + theta[t].sum(1))
        for t in range(T):
            mass = (theta[t].sum(0) ** 2 - (theta[t] ** 2).sum(0)) / 2
            u[t] = rng.gamma(config.a0 + link_counts[t].sum(0)) / (config.b0 + mass)
        if it % 10 == 0 or it == config.iterations - 1:
            trace.append(log_likelihood(net, phi, theta, u))
        if it >= config.burn_in:
            kept += 1
            for key, cur in (("phi", phi), ("theta", theta), ("u", u)):
                for acc, x in zip(sums[key], cur, strict=True):
                    acc += x
    mean = {key: [x / kept for x in xs] for key, xs in sums.items()}
    return GibbsFit(mean["phi"], mean["theta"], mean["u"], trace, config)
