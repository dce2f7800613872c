"""WGAE: a Weibull graph inference network (GCN -> WGCAE, Bayesian-attention GAT -> WGAAE) with the
GPGBN decoder (Poisson words, Bernoulli-Poisson links), trained on the ELBO; topics by TLASGR-MCMC.

Sources: research note B.3 (paper sec. on WGAE, released TF code and PyDPM's wgaae.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.wgae.gpgbn import crt, multinomial_split, segment_sum
from tenfold.wgae.weibull import SHAPE_MAX, SHAPE_MIN, kl_weibull_gamma, weibull_from_uniform, weibull_mean

DENSE_LIMIT = 20_000  # nodes: above this a dense N x N decoder does not fit in memory
DENSE_WORDS = 20_000_000  # draws x N x V: up to this the word rates come from one dense product
THETA_MIN, THETA_MAX = 2.2e-10, 1000.0  # clamp of theta draws (released code)


@dataclass(frozen=True)
class WGAEConfig:
    """Defaults: PyDPM/TF released settings where named; quick-run choices marked."""

    encoder: str = "gcn"  # "gcn" = WGCAE, "gat" = WGAAE
    topics: tuple[int, ...] = (16, 4)  # K_t bottom first (paper uses e.g. 128-64-32 on Cora)
    hidden: int = 128  # PyDPM hid_dims
    heads: int = 4  # PyDPM GATConv heads
    att_shape: float = 1000.0  # k of the Weibull attention weights (BAM 'soft_weibull')
    att_kl_weight: float = 1.0  # TF att_kl
    epochs: int = 60  # Phi updates (paper: 30,000); quick choice
    steps_per_epoch: int = 5  # Adam steps between Phi updates (TF: 20 early, then 5)
    lr: float = 0.01  # TF 0.001; higher for short runs
    weight_decay: float = 5e-4  # TF L2 5e-4
    samples: int = 10  # Weibull draws per step, each scored by the likelihood (PyDPM 10, TF 50)
    kl_weight: float = 1.0  # 1 = the paper's ELBO; 0 = what the released code optimises
    decoder: str = "dense"  # "dense" N x N (paper), "subgraph" (degree-sampled), "exact" (O(NK + E) identity)
    graph_weight: float | None = None  # eta_A; None -> 0.001 full graph, 0.05 subgraph (TF)
    subgraph_nodes: int = 500  # TF 100, PyDPM demo 1500
    subgraph_alpha: float = 2.0  # p(i) ~ degree^alpha (FastGAE 'degree')
    eta: float = 0.01  # Dirichlet prior on topics
    eval_every: int = 5  # epochs between validation checks

    def __post_init__(self) -> None:
        if self.encoder not in ("gcn", "gat"):
            raise InputError(f"encoder must be 'gcn' (WGCAE) or 'gat' (WGAAE), got {self.encoder!r}")
        if self.decoder not in ("dense", "subgraph", "exact"):
            raise InputError(f"decoder must be 'dense', 'subgraph' or 'exact', got {self.decoder!r}")
        if not self.topics or min(self.topics) < 1:
            raise InputError(f"topics must be positive layer sizes, got {self.topics}")
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.samples < 1 or self.eval_every < 1:
            raise InputError(f"epochs, steps_per_epoch, samples and eval_every must be >= 1, got {self.epochs}, "
                             f"{self.steps_per_epoch}, {self.samples}, {self.eval_every}")

    @property
    def link_weight(self) -> float:
        if self.graph_weight is not None:
            return self.graph_weight
        return 0.05 if self.decoder == "subgraph" else 0.001


# ---------------------------------------------------------------- the graph as tensors


def _sparse_features(net) -> torch.Tensor:
    """log(1 + counts), each row scaled to unit length, as a sparse (N, V) tensor (one sparse product per
    encoder). Unit rows keep inner-product decoders out of saturation on long documents."""
    vals = np.log1p(net.vals)
    norm = np.sqrt(np.bincount(net.rows, weights=vals**2, minlength=net.n_nodes))
    vals = vals / np.maximum(norm[net.rows], 1e-12)
    idx = torch.as_tensor(np.stack([net.rows, net.cols]), dtype=torch.long)
    with torch.sparse.check_sparse_tensor_invariants(False):
        return torch.sparse_coo_tensor(idx, torch.as_tensor(vals, dtype=torch.float32),
                                       (net.n_nodes, net.n_words)).coalesce()


def normalised_adjacency(edges: torch.Tensor, n: int) -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 (Kipf & Welling) as a sparse (N, N) tensor; `edges` (2, E) undirected, i < j."""
    loops = torch.arange(n, device=edges.device)
    i = torch.cat([edges[0], edges[1], loops])
    j = torch.cat([edges[1], edges[0], loops])
    deg = torch.bincount(i, minlength=n).float()
    w = deg[i].rsqrt() * deg[j].rsqrt()
    return torch.sparse_coo_tensor(torch.stack([i, j]), w, (n, n)).coalesce()


@dataclass
class GraphTensors:
    """What training needs, as tensors: sparse encoder input, the GCN operator, edges with self-loops
    for attention, the training links (i < j) and the word-count triplets."""

    x: torch.Tensor  # sparse (N, V)
    adj: torch.Tensor  # sparse normalised A + I
    edge_index: torch.Tensor  # (2, 2E + N): both directions and self-loops
    edges: torch.Tensor  # (2, E) i < j
    rows: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor
    n: int

    @classmethod
    def from_network(cls, net) -> GraphTensors:
        edges = torch.as_tensor(net.edges, dtype=torch.long)
        loops = torch.arange(net.n_nodes).repeat(2, 1)
        return cls(_sparse_features(net), normalised_adjacency(edges, net.n_nodes),
                   torch.cat([edges, edges.flip(0), loops], 1), edges, torch.as_tensor(net.rows),
                   torch.as_tensor(net.cols), torch.as_tensor(net.vals, dtype=torch.float32), net.n_nodes)

    def to(self, device: torch.device) -> GraphTensors:
        return GraphTensors(*(getattr(self, f).to(device) for f in ("x", "adj", "edge_index", "edges", "rows", "cols",
                                                                     "vals")), self.n)


def _linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.sparse.mm(x, weight.T) if x.is_sparse else x @ weight.T


# ---------------------------------------------------------------- encoders


class GraphConv(nn.Module):
    """GCN layer (Kipf & Welling): D^-1/2 (A + I) D^-1/2 X W + b; the same layer in every GCN model here."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor, g: GraphTensors, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.sparse.mm(g.adj, _linear(x, self.weight)) + self.bias


class WeibullAttentionConv(nn.Module):
    """GAT layer whose unnormalised attention weights are Weibull(k, exp(logit)/Gamma(1+1/k)) draws
    (Bayesian attention, 'soft_weibull'), normalised per target node over its neighbours *and itself*
    (self-loops, as the released code's `preprocess_adj_bias`); at eval the mean gives plain GAT."""

    def __init__(self, in_dim: int, out_dim: int, heads: int, shape: float, prior_alpha: float = 1.0,
                 prior_beta: float = 1.0):
        super().__init__()
        if out_dim % heads:
            raise InputError(f"hidden size {out_dim} must be divisible by heads {heads}")
        self.heads, self.dim, self.shape = heads, out_dim // heads, shape
        self.prior = (prior_alpha, prior_beta)
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.att_src = nn.Parameter(torch.empty(heads, self.dim))
        self.att_dst = nn.Parameter(torch.empty(heads, self.dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        for p in (self.weight, self.att_src, self.att_dst):
            nn.init.xavier_uniform_(p)
        self.kl = torch.zeros(())

    def forward(self, x: torch.Tensor, g: GraphTensors | torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """`g` is a GraphTensors or an edge_index (2, E') that already holds every node's self-loop."""
        from torch_geometric.utils import softmax

        edge_index = g.edge_index if isinstance(g, GraphTensors) else g
        n = x.shape[0]
        src, dst = edge_index
        h = _linear(x, self.weight).view(n, self.heads, self.dim)
        logit = F.leaky_relu((h * self.att_src).sum(-1)[src] + (h * self.att_dst).sum(-1)[dst], 0.2).clamp(max=20)
        if self.training:  # log w = ln lam + (1/k) ln(-ln(1 - eps)), lam = exp(logit) / Gamma(1 + 1/k)
            k = torch.full_like(logit, self.shape)
            log_lam = logit - torch.lgamma(1.0 + 1.0 / k)
            eps = torch.rand(logit.shape, generator=generator, dtype=logit.dtype, device="cpu").to(logit.device)
            score = log_lam + torch.log(-torch.log1p(-eps.clamp(1e-10, 1 - 1e-7))) / k
            self.kl = kl_weibull_gamma(k, torch.exp(log_lam), *self.prior).mean()
        else:
            score, self.kl = logit, torch.zeros((), device=x.device)
        att = softmax(score, dst, num_nodes=n)  # (E', heads)
        out = torch.zeros_like(h).index_add_(0, dst, h[src] * att.unsqueeze(-1))
        return out.reshape(n, -1) + self.bias


class WGAE(nn.Module):
    """Encoder (GCN or Weibull-attention GAT) -> per-layer Weibull heads; decoder buffers Phi^(t), link weights u^(t)."""

    def __init__(self, n_words: int, config: WGAEConfig, seed: int = 0):
        super().__init__()
        self.config = config
        gen = torch.Generator().manual_seed(seed)
        dims = [n_words] + [config.hidden] * len(config.topics)
        self.convs = nn.ModuleList(
            GraphConv(a, b) if config.encoder == "gcn" else WeibullAttentionConv(a, b, config.heads, config.att_shape)
            for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.shape_heads = nn.ModuleList(nn.Linear(config.hidden, k) for k in config.topics)
        self.scale_heads = nn.ModuleList(nn.Linear(config.hidden, k) for k in config.topics)
        self.u_raw = nn.ParameterList(nn.Parameter(torch.full((k,), -4.0)) for k in config.topics)
        sizes = [n_words, *config.topics[:-1]]
        for t, (v, k) in enumerate(zip(sizes, config.topics, strict=True)):
            phi = -torch.log(torch.rand(v, k, generator=gen))  # Dir(1) columns after normalising
            self.register_buffer(f"phi{t}", phi / phi.sum(0, keepdim=True))
            self.register_buffer(f"phi_precond{t}", torch.zeros(k))
        self.register_buffer("phi_step", torch.zeros((), dtype=torch.long))

    @property
    def phi(self) -> list[torch.Tensor]:
        return [getattr(self, f"phi{t}") for t in range(len(self.config.topics))]

    def u(self) -> list[torch.Tensor]:
        return [F.softplus(r) for r in self.u_raw]

    def encode(self, g: GraphTensors, generator: torch.Generator | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Weibull (k, lam) per layer: k = clip(softplus(W_k h), 0.1, 1000), lam = softplus(W_l h) / Gamma(1+1/k)."""
        params, h = [], g.x
        act = F.elu if self.config.encoder == "gat" else F.relu
        for conv, sh, sc in zip(self.convs, self.shape_heads, self.scale_heads, strict=True):
            h = act(conv(h, g, generator))
            k = F.softplus(sh(h)).clamp(SHAPE_MIN, SHAPE_MAX)
            lam = F.softplus(sc(h)) / torch.exp(torch.lgamma(1.0 + 1.0 / k)) + 1e-10
            params.append((k, lam))
        return params

    def forward(self, g: GraphTensors, generator: torch.Generator, draws: slice | None = None) -> dict:
        """The ELBO's terms for one step (see `elbo_terms`); training calls this so that a data-parallel
        wrapper sees the forward pass."""
        return elbo_terms(self, g, generator, draws)

    def attention_kl(self) -> torch.Tensor:
        if self.config.encoder != "gat":
            return torch.zeros((), device=self.phi0.device)
        return sum(conv.kl for conv in self.convs)

    def embed(self, g: GraphTensors) -> list[torch.Tensor]:
        """Posterior-mean theta per layer (N, K_t), no sampling."""
        was = self.training
        self.eval()
        with torch.no_grad():
            out = [weibull_mean(k, lam) for k, lam in self.encode(g)]
        self.train(was)
        return out

    def link_rate(self, theta: list[torch.Tensor], i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return sum((th[..., i, :] * uu * th[..., j, :]).sum(-1) for th, uu in zip(theta, self.u(), strict=True))

    def z(self, theta: list[torch.Tensor]) -> torch.Tensor:
        """Z = [sqrt(u^(1)) theta^(1), ..., sqrt(u^(T)) theta^(T)], so z_i . z_j = sum_t sum_k theta_ik u_k theta_jk."""
        return torch.cat([th * uu.sqrt() for th, uu in zip(theta, self.u(), strict=True)], dim=-1)


# ---------------------------------------------------------------- the likelihood (leading axes: Weibull draws)


def poisson_word_loglik(theta1: torch.Tensor, phi1: torch.Tensor, rows, cols, vals) -> torch.Tensor:
    """sum_vj [x log(Phi theta)_vj - (Phi theta)_vj - ln x!] over nonzeros; sum_v (Phi theta)_vj = sum_k theta_kj.
    theta1 (..., N, K) -> (...)."""
    if theta1[..., 0, 0].numel() * theta1.shape[-2] * phi1.shape[0] <= DENSE_WORDS:  # one GEMM, then gather
        rate = (theta1 @ phi1.T)[..., rows, cols]
    else:  # O(nnz K) memory for large corpora
        rate = (theta1[..., rows, :] * phi1[cols]).sum(-1)
    rate = rate.clamp_min(1e-10)
    return (vals * torch.log(rate) - torch.lgamma(vals + 1)).sum(-1) - theta1.sum((-2, -1))


def _log_link(rate: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(-rate)), stable."""
    return torch.log(-torch.expm1(-rate.clamp_min(1e-10)))


def link_loglik_dense(z: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Re-weighted Bernoulli-Poisson log-likelihood over all ordered pairs i != j (dense n x n, as the paper).
    z (..., N, D) -> (...)."""
    n = z.shape[-2]
    rate = z @ z.transpose(-1, -2)
    adj = torch.zeros(n, n, dtype=torch.bool, device=z.device)
    adj[edges[0], edges[1]] = True
    adj[edges[1], edges[0]] = True
    off = ~torch.eye(n, dtype=torch.bool, device=z.device)
    pairs, pos = n * (n - 1), float(adj.sum())
    pos_w, norm = _weights(pairs, pos)
    ll = torch.where(adj, pos_w * _log_link(rate), -rate)
    return norm * (ll * off).sum((-2, -1))


def link_loglik_exact(z: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """The same quantity as link_loglik_dense in O(NK + E): sum_{i != j} z_i.z_j = |sum z|^2 - sum |z_i|^2."""
    n = z.shape[-2]
    pos_rate = (z[..., edges[0], :] * z[..., edges[1], :]).sum(-1)
    total = (z.sum(-2) ** 2).sum(-1) - (z**2).sum((-2, -1))
    pairs, pos = n * (n - 1), 2.0 * edges.shape[1]
    pos_w, norm = _weights(pairs, pos)
    return norm * (pos_w * 2 * _log_link(pos_rate).sum(-1) - (total - 2 * pos_rate.sum(-1)))


def _weights(pairs: float, pos: float) -> tuple[float, float]:
    """VGAE re-weighting: pos_w = (#neg)/(#pos), norm = #pairs / (2 #neg)."""
    pos = max(pos, 1.0)
    neg = max(pairs - pos, 1.0)
    return neg / pos, pairs / (2 * neg)


def degree_subgraph(edges: torch.Tensor, n: int, size: int, alpha: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample `size` nodes without replacement, p(i) ~ degree_i^alpha (FastGAE); return (nodes, induced edges renumbered)."""
    deg = torch.bincount(edges.reshape(-1).cpu(), minlength=n).double()
    p = deg.pow(alpha) + 1e-12 * (deg.pow(alpha).sum() + 1.0)  # isolated nodes keep a tiny chance
    size = min(size, n)
    nodes = torch.multinomial(p, size, replacement=False, generator=generator).to(edges.device)
    index = torch.full((n,), -1, dtype=torch.long, device=edges.device)
    index[nodes] = torch.arange(size, device=edges.device)
    a, b = index[edges[0]], index[edges[1]]
    keep = (a >= 0) & (b >= 0)
    return nodes, torch.stack([a[keep], b[keep]])


def weibull_draws(params, eps: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    """theta = lam (-ln(1 - eps))^(1/k) per layer from uniforms eps[t] (S, N, K_t), clamped as the released code."""
    return [weibull_from_uniform(k, lam, e).clamp(THETA_MIN, THETA_MAX) for (k, lam), e in zip(params, eps, strict=True)]


def elbo_terms(model: WGAE, g: GraphTensors, generator: torch.Generator, draws: slice | None = None) -> dict:
    """L_X, L_A, sum_t KL_t (each the average over Weibull draws of its value *at* that draw, an unbiased
    estimate of the ELBO) and the attention KL. `draws` picks this process's share of the global draws."""
    cfg = model.config
    params = model.encode(g, generator)
    eps = [torch.rand((cfg.samples, g.n, k.shape[-1]), generator=generator).clamp(1e-10, 1 - 1e-7).to(k.device)
           for k, _ in params]
    sub = degree_subgraph(g.edges, g.n, cfg.subgraph_nodes, cfg.subgraph_alpha, generator) \
        if cfg.decoder == "subgraph" else None
    theta = weibull_draws(params, [e[draws] if draws is not None else e for e in eps])  # (S_local, N, K_t) per layer
    words = poisson_word_loglik(theta[0], model.phi[0], g.rows, g.cols, g.vals)
    if sub is not None:
        links = link_loglik_dense(model.z([th[:, sub[0]] for th in theta]), sub[1])
    elif cfg.decoder == "dense":
        if g.n > DENSE_LIMIT:
            raise UnsupportedError(f"a dense {g.n} x {g.n} link decoder does not fit in memory: use decoder='subgraph' "
                                   "(or 'exact')")
        links = link_loglik_dense(model.z(theta), g.edges)
    else:
        links = link_loglik_exact(model.z(theta), g.edges)
    kl = torch.zeros(theta[0].shape[0], device=g.x.device)
    for t, (k, lam) in enumerate(params):  # prior Gam(Phi^(t+1) theta^(t+1), 1) at each draw; top layer Gam(1, 1)
        alpha = (theta[t + 1] @ model.phi[t + 1].T).clamp_min(1e-10) if t + 1 < len(params) else torch.ones_like(k)
        kl = kl + kl_weibull_gamma(k, lam, alpha, 1.0).sum((-2, -1))
    first = weibull_draws([(k.detach(), lam.detach()) for k, lam in params], [e[:1] for e in eps])
    return {"words": words.mean(), "links": cfg.link_weight * links.mean(), "kl": kl.mean(),
            "att_kl": model.attention_kl(), "theta": [th[0] for th in first]}


def tlasgr_update(model: WGAE, theta: list[torch.Tensor], g: GraphTensors, rng: np.random.Generator, ratio: float = 1.0) -> None:
    """Topic-layer-adaptive stochastic gradient Riemannian MCMC step on every Phi^(t):
    phi_k <- proj[phi_k + (eps/M_k)((rho x_.k + eta) - (rho x_..k + eta V) phi_k) + N(0, 2 eps/M_k diag phi_k)]."""
    cfg = model.config
    model.phi_step += 1
    step = int(model.phi_step)
    eps = ((20.0 + step) / 21.0) ** -0.7  # eps_1 = 1
    forget = step**-0.9
    th = [t.double().cpu().numpy() for t in theta]
    phis = [p.double().cpu().numpy() for p in model.phi]
    rows, cols, vals = g.rows.cpu().numpy(), g.cols.cpu().numpy(), np.rint(g.vals.double().cpu().numpy())
    keep = vals > 0
    xk = multinomial_split(vals[keep], phis[0][cols[keep]] * th[0][rows[keep]], rng)
    counts_v = [segment_sum(cols[keep], xk, phis[0].shape[0])]
    node_counts = segment_sum(rows[keep], xk, g.n)
    for t in range(len(phis) - 1):  # CRT-augmented counts for the upper topic matrices
        tables = crt(node_counts, th[t + 1] @ phis[t + 1].T, rng)
        jj, kk = np.nonzero(tables)
        split = multinomial_split(tables[jj, kk], phis[t + 1][kk] * th[t + 1][jj], rng)
        counts_v.append(segment_sum(kk, split, phis[t].shape[1]))
        node_counts = segment_sum(jj, split, g.n)
    for t, (phi, cnt) in enumerate(zip(phis, counts_v, strict=True)):
        total = ratio * cnt.sum(0)
        pre = getattr(model, f"phi_precond{t}").double().cpu().numpy()
        pre = total if step == 1 else (1 - forget) * pre + forget * total
        pre = np.maximum(pre, 1e-10)
        grad = (ratio * cnt + cfg.eta) - (total + cfg.eta * phi.shape[0]) * phi
        noise = rng.normal(size=phi.shape) * np.sqrt(2 * eps / pre * np.maximum(phi, 0))
        new = np.maximum(phi + eps / pre * grad + noise, 1e-10)
        new = new / new.sum(0, keepdims=True)
        buf = getattr(model, f"phi{t}")
        buf.copy_(torch.as_tensor(new, dtype=buf.dtype))
        getattr(model, f"phi_precond{t}").copy_(torch.as_tensor(pre, dtype=buf.dtype))


# ---------------------------------------------------------------- training


@dataclass
class WGAEFit:
    model: WGAE
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = float("nan")


def _training_state(model, opt, epoch, gen, rng, history, best) -> dict:
    return {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch, "torch_rng": gen.get_state(),
            "numpy_rng": rng.bit_generator.state, "history": history,
            "best": {"val": best[0], "epoch": best[2], "state": best[1] or {}}}


def train_wgae(net, config: WGAEConfig = WGAEConfig(), seed: int = 0, validate=None, device: str | None = None,
               checkpoint: str | Path | None = None, checkpoint_every: int = 5) -> WGAEFit:
    """Fit WGAE on `net` (its links are the training graph). `validate(model, g) -> float` (higher is better)
    picks the epoch whose state is kept; without it the last epoch is kept.

    Runs through `tenfold.core.accel` (device, --mixed-precision, data-parallel over the Weibull draws:
    each process scores its share of the `samples` draws, so N processes give the single-process
    gradient). With `checkpoint` (a folder) the state is saved every `checkpoint_every` epochs and a
    rerun resumes from it, ending with the same result as an uninterrupted run.
    """
    from tenfold.core.accel import accelerator, local_slice
    from tenfold.core.io import Checkpoint
    from tenfold.core.progress import progress

    if checkpoint_every < 1:
        raise InputError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    acc = accelerator()
    dev = torch.device(device) if device else acc.device
    g = GraphTensors.from_network(net).to(dev)
    model = WGAE(net.n_words, config, seed).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model, opt = acc.prepare(model, opt)
    core = acc.unwrap_model(model)
    draws = local_slice(list(range(config.samples)), acc)
    share = slice(draws[0], draws[-1] + 1) if draws else slice(0, 0)
    ckpt = Checkpoint(checkpoint) if checkpoint is not None else None
    history, best, start = [], (-math.inf, None, -1), 0
    if ckpt is not None and ckpt.exists():
        state = ckpt.load()
        core.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]
        history, start = state["history"], state["epoch"]
        best = (state["best"]["val"], state["best"]["state"] or None, state["best"]["epoch"])
    for epoch in progress(range(start, config.epochs), desc=f"wgae-{config.encoder}"):
        model.train()
        for _ in range(config.steps_per_epoch):
            terms = model(g, gen, share)
            elbo = terms["words"] + terms["links"] - config.kl_weight * terms["kl"] - config.att_kl_weight * terms["att_kl"]
            loss = -elbo / g.n
            opt.zero_grad()
            acc.backward(loss)
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
        with torch.no_grad():
            tlasgr_update(core, terms["theta"], g, rng)
        row = {"epoch": epoch, "elbo_per_node": float(elbo.detach()) / g.n, "words": float(terms["words"].detach()),
               "links": float(terms["links"].detach()), "kl": float(terms["kl"].detach())}
        if validate is not None and (epoch % config.eval_every == 0 or epoch == config.epochs - 1):
            row["val"] = float(validate(core, g))
            if row["val"] > best[0]:
                best = (row["val"], {k: v.detach().clone() for k, v in core.state_dict().items()}, epoch)
        history.append(row)
        if ckpt is not None and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == config.epochs):
            ckpt.save(_training_state(core, opt, epoch + 1, gen, rng, history, best))
    fit = WGAEFit(core, history, best[2], best[0] if best[1] is not None else float("nan"))
    if best[1] is not None:
        core.load_state_dict(best[1])
    else:
        fit.best_epoch = config.epochs - 1
    core.eval()
    return fit


def fit_wgae(net, split, config: WGAEConfig = WGAEConfig(), seed: int = 0, device: str | None = None):
    """WGAE on the training links of `split`, epoch chosen on validation AUC; returns a LinkModel."""
    from tenfold.wgae.evaluate import LinkModel, auc_ap

    val_pos, val_neg = torch.as_tensor(split.val_pos), torch.as_tensor(split.val_neg)

    def validate(model: WGAE, g: GraphTensors) -> float:
        theta = model.embed(g)
        with torch.no_grad():
            pos = model.link_rate(theta, *val_pos.to(g.x.device)).cpu().numpy()
            neg = model.link_rate(theta, *val_neg.to(g.x.device)).cpu().numpy()
        return auc_ap(pos, neg)[0]

    train_net = net.with_edges(split.train)
    fit = train_wgae(train_net, config, seed, validate, device)
    fit.model.cpu()
    theta = fit.model.embed(GraphTensors.from_network(train_net))

    def score(pairs: np.ndarray) -> np.ndarray:  # the rate ranks pairs as 1 - exp(-rate) does, without saturating
        p = torch.as_tensor(pairs)
        with torch.no_grad():
            return fit.model.link_rate(theta, p[0], p[1]).double().numpy()

    name = "wgcae" if config.encoder == "gcn" else "wgaae"
    return LinkModel(name, torch.cat(theta, 1).numpy(), score, fit.best_epoch,
                     {"phi": [p.double().numpy() for p in fit.model.phi], "fit": fit}, fit.best_val)
