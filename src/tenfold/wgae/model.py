"""WGAE: a Weibull graph inference network (GCN -> WGCAE, Bayesian-attention GAT -> WGAAE) with the
GPGBN decoder (Poisson words, Bernoulli-Poisson links), trained on the ELBO; topics by TLASGR-MCMC.

Sources: research note B.3 (paper sec. on WGAE, released TF code and PyDPM's wgaae.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.wgae.gpgbn import crt, multinomial_split, segment_sum
from tenfold.wgae.weibull import SHAPE_MAX, SHAPE_MIN, kl_weibull_gamma, weibull_mean, weibull_rsample

DENSE_LIMIT = 20_000  # nodes: above this a dense N x N decoder does not fit in memory


@dataclass(frozen=True)
class WGAEConfig:
    """Defaults: PyDPM/TF released settings where named; quick-run choices marked."""

    encoder: str = "gcn"  # "gcn" = WGCAE, "gat" = WGAAE
    topics: tuple[int, ...] = (16, 4)  # K_t bottom first (paper uses e.g. 128-64-32 on Cora)
    hidden: int = 128  # PyDPM hid_dims
    heads: int = 4  # PyDPM GATConv heads
    att_shape: float = 1000.0  # k of the Weibull attention weights (BAM 'soft_weibull')
    att_kl_weight: float = 1.0  # TF att_kl
    epochs: int = 60  # paper: 30,000 Phi updates; quick choice
    steps_per_epoch: int = 5  # Adam steps between Phi updates (TF: 20 early, then 5)
    lr: float = 0.01  # TF 0.001; higher for short runs
    weight_decay: float = 5e-4  # TF L2 5e-4
    samples: int = 10  # Weibull draws averaged per step (PyDPM 10, TF 50)
    kl_weight: float = 1.0  # 1 = the paper's ELBO; 0 = what the released code optimises
    decoder: str = "dense"  # "dense" N x N (paper), "subgraph" (degree-sampled), "exact" (O(NK + E) identity)
    graph_weight: float | None = None  # eta_A; None -> 0.001 full graph, 0.05 subgraph (TF)
    subgraph_nodes: int = 500  # TF 100, PyDPM demo 1500
    subgraph_alpha: float = 2.0  # p(i) ~ degree^alpha (FastGAE 'degree')
    eta: float = 0.01  # Dirichlet prior on topics
    eval_every: int = 5

    def __post_init__(self) -> None:
        if self.encoder not in ("gcn", "gat"):
            raise InputError(f"encoder must be 'gcn' (WGCAE) or 'gat' (WGAAE), got {self.encoder!r}")
        if self.decoder not in ("dense", "subgraph", "exact"):
            raise InputError(f"decoder must be 'dense', 'subgraph' or 'exact', got {self.decoder!r}")
        if not self.topics or min(self.topics) < 1:
            raise InputError(f"topics must be positive layer sizes, got {self.topics}")

    @property
    def link_weight(self) -> float:
        if self.graph_weight is not None:
            return self.graph_weight
        return 0.05 if self.decoder == "subgraph" else 0.001


class WeibullAttentionConv(nn.Module):
    """GAT layer whose unnormalised attention weights are Weibull(k, exp(logit)/Gamma(1+1/k)) draws
    (Bayesian attention, 'soft_weibull'), normalised per target node; at eval the mean gives plain GAT."""

    def __init__(self, in_dim: int, out_dim: int, heads: int, shape: float, prior_alpha: float = 1.0,
                 prior_beta: float = 1.0):
        super().__init__()
        if out_dim % heads:
            raise InputError(f"hidden size {out_dim} must be divisible by heads {heads}")
        self.heads, self.dim, self.shape = heads, out_dim // heads, shape
        self.prior = (prior_alpha, prior_beta)
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.att_src = nn.Parameter(torch.empty(heads, self.dim))
        self.att_dst = nn.Parameter(torch.empty(heads, self.dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.xavier_uniform_(self.att_src)
        nn.init.xavier_uniform_(self.att_dst)
        self.kl = torch.zeros(())

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        from torch_geometric.utils import softmax

        n = x.shape[0]
        src, dst = edge_index
        h = self.lin(x).view(n, self.heads, self.dim)
        logit = F.leaky_relu((h * self.att_src).sum(-1)[src] + (h * self.att_dst).sum(-1)[dst], 0.2).clamp(max=20)
        k = torch.full_like(logit, self.shape)
        if self.training:  # log w = ln lam + (1/k) ln(-ln(1 - eps)), lam = exp(logit) / Gamma(1 + 1/k)
            log_lam = logit - torch.lgamma(1.0 + 1.0 / k)
            eps = torch.rand_like(logit).clamp(1e-10, 1 - 1e-7)
            score = log_lam + torch.log(-torch.log1p(-eps)) / k
            self.kl = kl_weibull_gamma(k, torch.exp(log_lam), *self.prior).mean()
        else:
            score, self.kl = logit, torch.zeros((), device=x.device)
        att = softmax(score, dst, num_nodes=n)  # (E, heads)
        out = torch.zeros_like(h).index_add_(0, dst, h[src] * att.unsqueeze(-1))
        return out.reshape(n, -1) + self.bias


class WGAE(nn.Module):
    """Encoder (GCN or Weibull-attention GAT) -> per-layer Weibull heads; decoder buffers Phi^(t), link weights u^(t)."""

    def __init__(self, n_words: int, config: WGAEConfig, seed: int = 0):
        super().__init__()
        self.config = config
        gen = torch.Generator().manual_seed(seed)
        dims = [n_words] + [config.hidden] * len(config.topics)
        self.convs = nn.ModuleList()
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            if config.encoder == "gcn":
                from torch_geometric.nn import GCNConv

                self.convs.append(GCNConv(a, b))
            else:
                self.convs.append(WeibullAttentionConv(a, b, config.heads, config.att_shape))
        self.shape_heads = nn.ModuleList(nn.Linear(config.hidden, k) for k in config.topics)
        self.scale_heads = nn.ModuleList(nn.Linear(config.hidden, k) for k in config.topics)
        self.u_raw = nn.ParameterList(nn.Parameter(torch.full((k,), -4.0)) for k in config.topics)
        sizes = [n_words, *config.topics[:-1]]
        for t, (v, k) in enumerate(zip(sizes, config.topics, strict=True)):
            phi = -torch.log(torch.rand(v, k, generator=gen))  # Dir(1) columns after normalising
            self.register_buffer(f"phi{t}", phi / phi.sum(0, keepdim=True))
            self.register_buffer(f"phi_precond{t}", torch.zeros(k))
        self.phi_step = 0

    @property
    def phi(self) -> list[torch.Tensor]:
        return [getattr(self, f"phi{t}") for t in range(len(self.config.topics))]

    def u(self) -> list[torch.Tensor]:
        return [F.softplus(r) for r in self.u_raw]

    def encode(self, x: torch.Tensor, edge_index: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Weibull (k, lam) per layer: k = clip(softplus(W_k h), 0.1, 1000), lam = softplus(W_l h) / Gamma(1+1/k)."""
        params, h = [], x
        for conv, sh, sc in zip(self.convs, self.shape_heads, self.scale_heads, strict=True):
            h = F.elu(conv(h, edge_index)) if self.config.encoder == "gat" else F.relu(conv(h, edge_index))
            k = F.softplus(sh(h)).clamp(SHAPE_MIN, SHAPE_MAX)
            lam = F.softplus(sc(h)) / torch.exp(torch.lgamma(1.0 + 1.0 / k)) + 1e-10
            params.append((k, lam))
        return params

    def attention_kl(self) -> torch.Tensor:
        if self.config.encoder != "gat":
            return torch.zeros((), device=self.phi0.device)
        return sum(conv.kl for conv in self.convs)

    def embed(self, x: torch.Tensor, edge_index: torch.Tensor) -> list[torch.Tensor]:
        """Posterior-mean theta per layer (N, K_t), no sampling."""
        was = self.training
        self.eval()
        with torch.no_grad():
            out = [weibull_mean(k, lam) for k, lam in self.encode(x, edge_index)]
        self.train(was)
        return out

    def link_rate(self, theta: list[torch.Tensor], i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return sum((th[i] * uu * th[j]).sum(-1) for th, uu in zip(theta, self.u(), strict=True))

    def z(self, theta: list[torch.Tensor]) -> torch.Tensor:
        """Z = [sqrt(u^(1)) theta^(1), ..., sqrt(u^(T)) theta^(T)], so z_i . z_j = sum_t sum_k theta_ik u_k theta_jk."""
        return torch.cat([th * uu.sqrt() for th, uu in zip(theta, self.u(), strict=True)], dim=-1)


def poisson_word_loglik(theta1: torch.Tensor, phi1: torch.Tensor, rows, cols, vals) -> torch.Tensor:
    """sum_vj [x log(Phi theta)_vj - (Phi theta)_vj - ln x!] over nonzeros; sum_v (Phi theta)_vj = sum_k theta_kj."""
    rate = (theta1[rows] * phi1[cols]).sum(-1).clamp_min(1e-10)
    return (vals * torch.log(rate) - torch.lgamma(vals + 1)).sum() - theta1.sum()


def _log_link(rate: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(-rate)), stable."""
    return torch.log(-torch.expm1(-rate.clamp_min(1e-10)))


def link_loglik_dense(z: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Re-weighted Bernoulli-Poisson log-likelihood over all ordered pairs i != j (dense n x n, as the paper)."""
    n = z.shape[0]
    rate = z @ z.T
    adj = torch.zeros(n, n, dtype=torch.bool, device=z.device)
    adj[edges[0], edges[1]] = True
    adj[edges[1], edges[0]] = True
    off = ~torch.eye(n, dtype=torch.bool, device=z.device)
    pairs, pos = n * (n - 1), float(adj.sum())
    pos_w, norm = _weights(pairs, pos)
    ll = torch.where(adj, pos_w * _log_link(rate), -rate)
    return norm * ll[off].sum()


def link_loglik_exact(z: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """The same quantity as link_loglik_dense in O(NK + E): sum_{i != j} z_i.z_j = |sum z|^2 - sum |z_i|^2."""
    n = z.shape[0]
    pos_rate = (z[edges[0]] * z[edges[1]]).sum(-1)
    total = (z.sum(0) ** 2).sum() - (z**2).sum()
    pairs, pos = n * (n - 1), 2.0 * edges.shape[1]
    pos_w, norm = _weights(pairs, pos)
    return norm * (pos_w * 2 * _log_link(pos_rate).sum() - (total - 2 * pos_rate.sum()))


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


@dataclass
class GraphTensors:
    """What training needs, as tensors: encoder input, both-direction training edges, word counts."""

    x: torch.Tensor
    edge_index: torch.Tensor  # (2, 2E) both directions, for the encoder
    edges: torch.Tensor  # (2, E) i < j
    rows: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor
    n: int

    @classmethod
    def from_network(cls, net) -> GraphTensors:
        edges = torch.as_tensor(net.edges, dtype=torch.long)
        return cls(torch.log1p(torch.as_tensor(net.dense_counts())), torch.cat([edges, edges.flip(0)], 1), edges,
                   torch.as_tensor(net.rows), torch.as_tensor(net.cols), torch.as_tensor(net.vals, dtype=torch.float32),
                   net.n_nodes)

    def to(self, device: torch.device) -> GraphTensors:
        return GraphTensors(*(getattr(self, f).to(device) for f in ("x", "edge_index", "edges", "rows", "cols", "vals")),
                            self.n)


def elbo_terms(model: WGAE, g: GraphTensors, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """L_X, L_A (per the decoder choice), sum_t KL_t and the attention KL for one step."""
    cfg = model.config
    params = model.encode(g.x, g.edge_index)
    theta = [weibull_rsample(k, lam, cfg.samples, generator).mean(0).clamp(2.2e-10, 1000.0) for k, lam in params]
    words = poisson_word_loglik(theta[0], model.phi[0], g.rows, g.cols, g.vals)
    if cfg.decoder == "subgraph":
        nodes, sub = degree_subgraph(g.edges, g.n, cfg.subgraph_nodes, cfg.subgraph_alpha, generator)
        links = link_loglik_dense(model.z([th[nodes] for th in theta]), sub)
    elif cfg.decoder == "dense":
        if g.n > DENSE_LIMIT:
            raise UnsupportedError(f"a dense {g.n} x {g.n} link decoder does not fit in memory: use decoder='subgraph' "
                                   "(or 'exact')")
        links = link_loglik_dense(model.z(theta), g.edges)
    else:
        links = link_loglik_exact(model.z(theta), g.edges)
    kl = torch.zeros((), device=g.x.device)
    for t, (k, lam) in enumerate(params):  # prior Gam(Phi^(t+1) theta^(t+1), 1); top layer Gam(1, 1)
        alpha = (theta[t + 1] @ model.phi[t + 1].T).clamp_min(1e-10) if t + 1 < len(params) else torch.ones_like(k)
        kl = kl + kl_weibull_gamma(k, lam, alpha, 1.0).sum()
    return {"words": words, "links": cfg.link_weight * links, "kl": kl, "att_kl": model.attention_kl(),
            "theta": [th.detach() for th in theta]}


def tlasgr_update(model: WGAE, theta: list[torch.Tensor], g: GraphTensors, rng: np.random.Generator, ratio: float = 1.0) -> None:
    """Topic-layer-adaptive stochastic gradient Riemannian MCMC step on every Phi^(t):
    phi_k <- proj[phi_k + (eps/M_k)((rho x_.k + eta) - (rho x_..k + eta V) phi_k) + N(0, 2 eps/M_k diag phi_k)]."""
    cfg = model.config
    model.phi_step += 1
    step = model.phi_step
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
        getattr(model, f"phi{t}").copy_(torch.as_tensor(new, dtype=torch.float32))
        getattr(model, f"phi_precond{t}").copy_(torch.as_tensor(pre, dtype=torch.float32))


@dataclass
class WGAEFit:
    model: WGAE
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1


def train_wgae(net, config: WGAEConfig = WGAEConfig(), seed: int = 0, validate=None, device: str | None = None) -> WGAEFit:
    """Fit WGAE on `net` (its links are the training graph). `validate(model, g) -> float` (higher is better)
    picks the epoch whose state is kept; without it the last epoch is kept. `device` defaults to cpu."""
    from tenfold.core.progress import progress

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = torch.device(device or "cpu")
    g = GraphTensors.from_network(net).to(dev)
    model = WGAE(net.n_words, config, seed).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    fit, best = WGAEFit(model), (-math.inf, None)
    for epoch in progress(range(config.epochs), desc=f"wgae-{config.encoder}"):
        model.train()
        for _ in range(config.steps_per_epoch):
            terms = elbo_terms(model, g, gen)
            elbo = terms["words"] + terms["links"] - config.kl_weight * terms["kl"] - config.att_kl_weight * terms["att_kl"]
            loss = -elbo / g.n
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
        tlasgr_update(model, terms["theta"], g, rng)
        row = {"epoch": epoch, "elbo_per_node": float(elbo.detach()) / g.n, "words": float(terms["words"].detach()),
               "links": float(terms["links"].detach()), "kl": float(terms["kl"].detach())}
        if validate is not None and (epoch % config.eval_every == 0 or epoch == config.epochs - 1):
            row["val"] = float(validate(model, g))
            if row["val"] > best[0]:
                best = (row["val"], {k: v.clone() for k, v in model.state_dict().items()})
                fit.best_epoch = epoch
        fit.history.append(row)
    if best[1] is not None:
        model.load_state_dict(best[1])
    else:
        fit.best_epoch = config.epochs - 1
    model.eval()
    return fit


def fit_wgae(net, split, config: WGAEConfig = WGAEConfig(), seed: int = 0, device: str | None = None):
    """WGAE on the training links of `split`, epoch chosen on validation AUC; returns a LinkModel."""
    from tenfold.wgae.evaluate import LinkModel, auc_ap

    val_pos, val_neg = torch.as_tensor(split.val_pos), torch.as_tensor(split.val_neg)

    def validate(model: WGAE, g: GraphTensors) -> float:
        theta = model.embed(g.x, g.edge_index)
        with torch.no_grad():
            pos = model.link_rate(theta, *val_pos.to(g.x.device)).cpu().numpy()
            neg = model.link_rate(theta, *val_neg.to(g.x.device)).cpu().numpy()
        return auc_ap(pos, neg)[0]

    fit = train_wgae(net.with_edges(split.train), config, seed, validate, device)
    fit.model.cpu()
    g = GraphTensors.from_network(net.with_edges(split.train))
    theta = fit.model.embed(g.x, g.edge_index)

    def score(pairs: np.ndarray) -> np.ndarray:
        p = torch.as_tensor(pairs)
        with torch.no_grad():
            return (-torch.expm1(-fit.model.link_rate(theta, p[0], p[1]))).numpy()

    name = "wgcae" if config.encoder == "gcn" else "wgaae"
    return LinkModel(name, torch.cat(theta, 1).numpy(), score, fit.best_epoch,
                     {"phi": [p.double().numpy() for p in fit.model.phi], "fit": fit})
