"""GCCAD (graph contrastive coding for anomaly detection, Chen et al. 2022), the structural encoder MIND
reads its graph embeddings from. Follows `THUDM/GraphCAD` as summarised in the research note:

per layer
  (i)   edge update: p_ij = sigma(MLP([|x_i - x_j|, x_i - c, x_j - c]));  s_ij ~ RelaxedBernoulli(T, p_ij)
        with the straight-through hard sample; w'_ij = alpha s_ij w_ij + (1 - alpha) s_ij p_ij
  (ii)  node update: x <- dropout(ReLU(GCNConv(x, w')))
  (iii) system update: c <- sum_i softmax_i(x_i . c) x_i   (attention pooling to the centroid)
loss  = InfoNCE(normal nodes vs the centroid, outliers as negatives, tau = 0.1)
        + 0.1 * InfoNCE over edge probabilities (normal-normal edges vs edges touching an outlier)
score = cos(x_i, c)   (high = belongs to the author)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tenfold.core.errors import InputError
from tenfold.ind.graph import AuthorGraph


@dataclass(frozen=True)
class GCCADConfig:
    hidden: int = 64  # paper: 768 = RoBERTa width; smaller here (quick CPU profile)
    layers: int = 2  # GraphCAD AMiner: 2 outer layers
    temperature: float = 0.6  # relaxed Bernoulli temperature (GraphCAD)
    dropout: float = 0.5
    tau: float = 0.1  # InfoNCE temperature (GraphCAD outlierLoss)
    link_weight: float = 0.1
    lr: float = 5e-4  # GraphCAD: 5e-4 warm-up/linear decay; quick uses a larger constant lr
    epochs: int = 50
    weight_decay: float = 0.0
    graphs_per_step: int = 1  # GraphCAD: one author graph per step; >1 batches disjoint graphs (faster on CPU)


@dataclass
class GraphBatch:
    """Disjoint union of author graphs: node -> graph index in `batch` (GCCAD runs on many at once)."""

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    batch: torch.Tensor  # (n,)
    num_graphs: int
    y: torch.Tensor | None
    edge_label: torch.Tensor | None

    @classmethod
    def of(cls, graphs: list[AuthorGraph]) -> GraphBatch:
        offsets = torch.tensor([0] + [len(g.pids) for g in graphs[:-1]]).cumsum(0)
        labelled = all(g.y is not None for g in graphs)
        return cls(torch.cat([g.x for g in graphs]),
                   torch.cat([g.edge_index + o for g, o in zip(graphs, offsets, strict=True)], dim=1),
                   torch.cat([g.edge_weight for g in graphs]),
                   torch.cat([torch.full((len(g.pids),), i) for i, g in enumerate(graphs)]), len(graphs),
                   torch.cat([g.y for g in graphs]) if labelled else None,
                   torch.cat([g.edge_label for g in graphs]) if labelled else None)

    def to(self, device) -> GraphBatch:
        return GraphBatch(self.x.to(device), self.edge_index.to(device), self.edge_weight.to(device),
                          self.batch.to(device), self.num_graphs, None if self.y is None else self.y.to(device),
                          None if self.edge_label is None else self.edge_label.to(device))


def _segment_mean(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    total = values.new_zeros(n).index_add(0, index, values)
    count = values.new_zeros(n).index_add(0, index, torch.ones_like(values))
    return total / count.clamp_min(1)


def _segment_logsumexp(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """logsumexp of `values` per segment; -inf for empty segments."""
    top = values.new_full((n,), -torch.inf).scatter_reduce(0, index, values, "amax")
    safe = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    sums = values.new_zeros(n).index_add(0, index, torch.exp(values - safe[index]))
    return torch.where(sums > 0, safe + torch.log(sums.clamp_min(1e-300)), torch.full_like(sums, -torch.inf))


class GCCADLayer(nn.Module):
    def __init__(self, d_in: int, d_out: int, temperature: float, dropout: float):
        from torch_geometric.nn import GCNConv

        super().__init__()
        self.edge_mlp = nn.Sequential(nn.Linear(3 * d_in, d_in), nn.ReLU(), nn.Linear(d_in, 1))
        self.alpha = nn.Parameter(torch.tensor(0.0))  # sigmoid(0) = 1/2 mixes observed and learned weights
        self.conv = GCNConv(d_in, d_out)
        self.temperature, self.dropout = temperature, dropout

    def forward(self, x, c, edge_index, weight, batch, num_graphs):
        from torch_geometric.utils import softmax as segment_softmax

        src, dst = edge_index
        cb = c[batch]  # (n, d) each node's centroid
        xi, xj = x[src], x[dst]
        p = torch.sigmoid(self.edge_mlp(torch.cat([(xi - xj).abs(), xi - cb[src], xj - cb[dst]], dim=1))).squeeze(1)
        if self.training:
            soft = torch.distributions.RelaxedBernoulli(torch.tensor(self.temperature), probs=p.clamp(1e-6, 1 - 1e-6),
                                                         validate_args=False).rsample()
            s = (soft > 0.5).float() - soft.detach() + soft  # straight-through
        else:
            s = (p > 0.5).float()
        alpha = torch.sigmoid(self.alpha)
        w = alpha * s * weight + (1 - alpha) * s * p
        h = F.dropout(F.relu(self.conv(x, edge_index, w)), self.dropout, self.training)
        if c.shape[1] == h.shape[1]:
            q = c  # previous centroid as the query
        else:
            q = h.new_zeros(num_graphs, h.shape[1]).index_add(0, batch, h) / torch.bincount(batch, minlength=num_graphs).clamp_min(1)[:, None]
        att = segment_softmax((h * q[batch]).sum(1) / math.sqrt(h.shape[1]), batch, num_nodes=h.shape[0])
        c_new = h.new_zeros(num_graphs, h.shape[1]).index_add(0, batch, att[:, None] * h)
        return h, c_new, p


class GCCAD(nn.Module):
    """Scores the papers of author graphs; `embed` returns per-paper and author-level vectors."""

    def __init__(self, in_dim: int, cfg: GCCADConfig = GCCADConfig()):
        super().__init__()
        self.cfg = cfg
        dims = [in_dim] + [cfg.hidden] * cfg.layers
        self.layers = nn.ModuleList(GCCADLayer(dims[i], dims[i + 1], cfg.temperature, cfg.dropout) for i in range(cfg.layers))
        self.head = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.hidden))

    def forward(self, g: AuthorGraph | GraphBatch):
        """Node states (n, hidden), centroids (num_graphs, hidden), edge probabilities per layer."""
        b = g if isinstance(g, GraphBatch) else GraphBatch.of([g])
        x = b.x
        c = x.new_zeros(b.num_graphs, x.shape[1]).index_add(0, b.batch, x) / torch.bincount(b.batch, minlength=b.num_graphs).clamp_min(1)[:, None]
        probs = []
        for layer in self.layers:
            x, c, p = layer(x, c, b.edge_index, b.edge_weight, b.batch, b.num_graphs)
            probs.append(p)
        return x, c, probs

    def scores(self, g: AuthorGraph) -> torch.Tensor:
        x, c, _ = self(g)
        return F.cosine_similarity(x, c.expand_as(x), dim=1)

    @torch.no_grad()
    def embed(self, g: AuthorGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, hidden + 1) per paper [x_i, cos(x_i, c)] and (hidden + 1,) author [c, mean cos]."""
        was = self.training
        self.eval()
        x, c, _ = self(g)
        s = F.cosine_similarity(x, c.expand_as(x), dim=1)
        self.train(was)
        return torch.cat([x, s[:, None]], 1), torch.cat([c[0], s.mean()[None]])


def contrastive_loss(z: torch.Tensor, c: torch.Tensor, y: torch.Tensor, tau: float,
                     batch: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE: each normal node's similarity to its centroid against its graph's outliers' similarities.

    Averaged over the normal nodes of each graph that has outliers, then over those graphs.
    """
    batch = torch.zeros(len(z), dtype=torch.long, device=z.device) if batch is None else batch
    n = int(batch.max()) + 1 if len(batch) else 1
    sim = F.cosine_similarity(z, c[batch], dim=1) / tau
    neg = y < 0.5
    lse_neg = _segment_logsumexp(sim[neg], batch[neg], n)
    pos = (~neg) & torch.isfinite(lse_neg[batch])
    if not bool(pos.any()):
        return sim.sum() * 0.0  # zero, but on the graph, so every data-parallel process runs backward
    per = -sim[pos] + torch.logaddexp(sim[pos], lse_neg[batch[pos]])
    graphs = torch.unique(batch[pos])
    return _segment_mean(per, batch[pos], n)[graphs].mean()


def link_loss(p: torch.Tensor, label: torch.Tensor, tau: float, edge_batch: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE over edge probabilities: each normal-normal edge against its graph's edges touching an outlier."""
    edge_batch = torch.zeros(len(p), dtype=torch.long, device=p.device) if edge_batch is None else edge_batch
    n = int(edge_batch.max()) + 1 if len(edge_batch) else 1
    logit = p / tau
    neg = label < 0.5
    lse_neg = _segment_logsumexp(logit[neg], edge_batch[neg], n)
    pos = (~neg) & torch.isfinite(lse_neg[edge_batch])
    if not bool(pos.any()):
        return p.sum() * 0.0
    per = -logit[pos] + torch.logaddexp(logit[pos], lse_neg[edge_batch[pos]])
    graphs = torch.unique(edge_batch[pos])
    return _segment_mean(per, edge_batch[pos], n)[graphs].mean()


def gccad_loss(model: GCCAD, g: AuthorGraph | GraphBatch) -> torch.Tensor:
    b = g if isinstance(g, GraphBatch) else GraphBatch.of([g])
    x, c, probs = model(b)
    loss = contrastive_loss(model.head(x), model.head(c), b.y, model.cfg.tau, b.batch)
    edge_batch = b.batch[b.edge_index[0]]
    for p in probs:
        loss = loss + model.cfg.link_weight * link_loss(p, b.edge_label, model.cfg.tau, edge_batch) / len(probs)
    return loss


class GCCADObjective(nn.Module):
    """The training loss as a module's forward, so `accelerate` can wrap it (autocast, data-parallel)."""

    def __init__(self, model: GCCAD):
        super().__init__()
        self.model = model

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        return gccad_loss(self.model, batch)


def train_gccad(graphs: list[AuthorGraph], cfg: GCCADConfig, seed: int = 0) -> tuple[GCCAD, list[float]]:
    """Train one GCCAD across the labelled author graphs (`graphs_per_step` graphs per Adam step).

    Through `tenfold.core.accel`: under `accelerate launch` each process takes its share of every
    step's graphs (a step whose graphs do not split evenly drops its last ones there)."""
    from tenfold.core.accel import accelerator, local_slice

    torch.manual_seed(seed)
    graphs = [g for g in graphs if g.y is not None and len(g.pids) > 1]
    if not graphs:
        raise InputError("GCCAD needs labelled training authors with at least two papers")
    model = GCCAD(graphs[0].x.shape[1], cfg)
    acc = accelerator()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    objective, opt = acc.prepare(GCCADObjective(model), opt)
    gen = torch.Generator().manual_seed(seed)
    history = []
    objective.train()
    k, world = max(1, cfg.graphs_per_step), acc.num_processes
    for _ in range(cfg.epochs):
        total, steps = 0.0, 0
        order = torch.randperm(len(graphs), generator=gen).tolist()
        for i in range(0, len(order), k):
            chunk = order[i: i + k]
            chunk = chunk[: len(chunk) - len(chunk) % world]
            if not chunk:
                continue
            batch = GraphBatch.of([graphs[j] for j in local_slice(chunk, acc)]).to(acc.device)
            loss = objective(batch)
            if acc.reduce(torch.tensor(float(not math.isfinite(loss.item())), device=acc.device), "sum") > 0:
                continue
            opt.zero_grad()
            acc.backward(loss)
            grads = [q.grad for q in model.parameters() if q.grad is not None]
            if not all(torch.isfinite(q).all() for q in grads):
                continue  # a rare non-finite relaxed-Bernoulli gradient: skip the step (the same in every process)
            acc.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += loss.item()
            steps += 1
        history.append(total / max(1, steps))
    return model.cpu().eval(), history  # scoring author graphs is cheap: it runs on the CPU
