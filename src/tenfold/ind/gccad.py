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


class GCCADLayer(nn.Module):
    def __init__(self, d_in: int, d_out: int, temperature: float, dropout: float):
        from torch_geometric.nn import GCNConv

        super().__init__()
        self.edge_mlp = nn.Sequential(nn.Linear(3 * d_in, d_in), nn.ReLU(), nn.Linear(d_in, 1))
        self.alpha = nn.Parameter(torch.tensor(0.0))  # sigmoid(0) = 1/2 mixes observed and learned weights
        self.conv = GCNConv(d_in, d_out)
        self.temperature, self.dropout = temperature, dropout

    def forward(self, x, c, edge_index, weight):
        xi, xj = x[edge_index[0]], x[edge_index[1]]
        p = torch.sigmoid(self.edge_mlp(torch.cat([(xi - xj).abs(), xi - c, xj - c], dim=1))).squeeze(1)
        if self.training:
            soft = torch.distributions.RelaxedBernoulli(torch.tensor(self.temperature), probs=p.clamp(1e-6, 1 - 1e-6),
                                                     validate_args=False).rsample()
            s = (soft > 0.5).float() - soft.detach() + soft  # straight-through
        else:
            s = (p > 0.5).float()
        alpha = torch.sigmoid(self.alpha)
        w = alpha * s * weight + (1 - alpha) * s * p
        h = F.dropout(F.relu(self.conv(x, edge_index, w)), self.dropout, self.training)
        q = c if c.shape[1] == h.shape[1] else h.mean(0, keepdim=True)  # previous centroid as the query
        att = torch.softmax(h @ q.T / math.sqrt(h.shape[1]), dim=0)  # (n, 1)
        return h, (att * h).sum(0, keepdim=True), p


class GCCAD(nn.Module):
    """Scores the papers of one author graph; `embed` returns per-paper and author-level vectors."""

    def __init__(self, in_dim: int, cfg: GCCADConfig = GCCADConfig()):
        super().__init__()
        self.cfg = cfg
        dims = [in_dim] + [cfg.hidden] * cfg.layers
        self.layers = nn.ModuleList(GCCADLayer(dims[i], dims[i + 1], cfg.temperature, cfg.dropout) for i in range(cfg.layers))
        self.head = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.hidden))

    def forward(self, g: AuthorGraph):
        x, w = g.x, g.edge_weight
        c = x.mean(0, keepdim=True)
        probs = []
        for layer in self.layers:
            x, c, p = layer(x, c, g.edge_index, w)
            probs.append(p)
        return x, c, probs

    def scores(self, g: AuthorGraph) -> torch.Tensor:
        x, c, _ = self(g)
        return F.cosine_similarity(x, c, dim=1)

    @torch.no_grad()
    def embed(self, g: AuthorGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, hidden + 1) per paper [x_i, cos(x_i, c)] and (hidden + 1,) author [c, mean cos]."""
        was = self.training
        self.eval()
        x, c, _ = self(g)
        s = F.cosine_similarity(x, c, dim=1)
        self.train(was)
        return torch.cat([x, s[:, None]], 1), torch.cat([c[0], s.mean()[None]])


def contrastive_loss(z: torch.Tensor, c: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE: each normal node's similarity to the centroid against all outliers' similarities."""
    sim = F.cosine_similarity(z, c, dim=1) / tau
    pos, neg = sim[y > 0.5], sim[y < 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return sim.new_zeros(())
    logits = torch.cat([pos[:, None], neg[None, :].expand(len(pos), -1)], dim=1)
    return -torch.log_softmax(logits, dim=1)[:, 0].mean()


def link_loss(p: torch.Tensor, label: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE over edge probabilities: each normal-normal edge against the edges touching an outlier."""
    pos, neg = p[label > 0.5] / tau, p[label < 0.5] / tau
    if len(pos) == 0 or len(neg) == 0:
        return p.new_zeros(())
    logits = torch.cat([pos[:, None], neg[None, :].expand(len(pos), -1)], dim=1)
    return -torch.log_softmax(logits, dim=1)[:, 0].mean()


def gccad_loss(model: GCCAD, g: AuthorGraph) -> torch.Tensor:
    x, c, probs = model(g)
    loss = contrastive_loss(model.head(x), model.head(c), g.y, model.cfg.tau)
    label = g.edge_label
    for p in probs:
        loss = loss + model.cfg.link_weight * link_loss(p, label, model.cfg.tau) / len(probs)
    return loss


def train_gccad(graphs: list[AuthorGraph], cfg: GCCADConfig, seed: int = 0) -> tuple[GCCAD, list[float]]:
    """Train one GCCAD across the labelled author graphs (one graph per step, shuffled each epoch)."""
    torch.manual_seed(seed)
    graphs = [g for g in graphs if g.y is not None and len(g.pids) > 1]
    model = GCCAD(graphs[0].x.shape[1], cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    history = []
    model.train()
    for _ in range(cfg.epochs):
        total = 0.0
        for i in torch.randperm(len(graphs), generator=gen).tolist():
            loss = gccad_loss(model, graphs[i])
            if not loss.requires_grad or not math.isfinite(loss.item()):
                continue
            opt.zero_grad()
            loss.backward()
            grads = [q.grad for q in model.parameters() if q.grad is not None]
            if not all(torch.isfinite(q).all() for q in grads):
                continue  # a rare non-finite relaxed-Bernoulli gradient: skip the step
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += loss.item()
        history.append(total / len(graphs))
    model.eval()
    return model, history
