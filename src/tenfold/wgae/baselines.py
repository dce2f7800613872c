"""Competing methods with one interface: fit on the training graph, pick the epoch on validation AUC,
return a `LinkModel` (node embedding + a link scorer). GAE / VGAE / ARGVA come from torch_geometric
(2-layer GCN encoders as in Kipf & Welling: 32 -> 16); Gibbs GPGBN is `gpgbn.gibbs`."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from tenfold.data.planetoid import DocumentNetwork
from tenfold.wgae.evaluate import LinkModel, LinkSplit, auc_ap
from tenfold.wgae.gpgbn import GibbsConfig, gibbs


class _GCNEncoder(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out: int, variational: bool):
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.conv1 = GCNConv(in_dim, hidden)
        self.conv_mu = GCNConv(hidden, out)
        self.conv_logstd = GCNConv(hidden, out) if variational else None

    def forward(self, x, edge_index):
        h = self.conv1(x, edge_index).relu()
        if self.conv_logstd is None:
            return self.conv_mu(h, edge_index)
        return self.conv_mu(h, edge_index), self.conv_logstd(h, edge_index)


def _inner_product_scorer(z: torch.Tensor) -> Callable[[np.ndarray], np.ndarray]:
    def score(pairs: np.ndarray) -> np.ndarray:
        p = torch.as_tensor(pairs)
        return torch.sigmoid((z[p[0]] * z[p[1]]).sum(-1)).numpy()

    return score


def fit_autoencoder(kind: str, net: DocumentNetwork, split: LinkSplit, seed: int = 0, epochs: int = 200,
                    lr: float = 0.01, hidden: int = 32, out: int = 16, eval_every: int = 5) -> LinkModel:
    """kind in {"gae", "vgae", "argva"}: torch_geometric models on log1p word counts as node features."""
    from torch_geometric.nn import ARGVA, GAE, VGAE

    torch.manual_seed(seed)
    x = torch.log1p(torch.as_tensor(net.dense_counts()))
    tr = torch.as_tensor(split.train, dtype=torch.long)
    edge_index = torch.cat([tr, tr.flip(0)], 1)
    enc = _GCNEncoder(x.shape[1], hidden, out, variational=kind != "gae")
    if kind == "gae":
        model = GAE(enc)
    elif kind == "vgae":
        model = VGAE(enc)
    else:
        disc = nn.Sequential(nn.Linear(out, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
        model = ARGVA(enc, disc)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=0.001)
    opt = torch.optim.Adam(enc.parameters(), lr=lr)
    best = (-1.0, None, -1)
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        z = model.encode(x, edge_index)
        if kind == "argva":
            for _ in range(5):
                disc_opt.zero_grad()
                model.discriminator_loss(z.detach()).backward()
                disc_opt.step()
        loss = model.recon_loss(z, tr)
        if kind in ("vgae", "argva"):
            loss = loss + model.kl_loss() / net.n_nodes
        if kind == "argva":
            loss = loss + model.reg_loss(z)
        loss.backward()
        opt.step()
        if epoch % eval_every == 0 or epoch == epochs - 1:
            model.eval()
            with torch.no_grad():
                zz = model.encode(x, edge_index)
            scorer = _inner_product_scorer(zz)
            val = auc_ap(scorer(split.val_pos), scorer(split.val_neg))[0]
            if val > best[0]:
                best = (val, copy.deepcopy(model.state_dict()), epoch)
    model.load_state_dict(best[1])
    model.eval()
    with torch.no_grad():
        z = model.encode(x, edge_index)
    return LinkModel(kind, z.numpy(), _inner_product_scorer(z), best[2])


def fit_gibbs(net: DocumentNetwork, split: LinkSplit, config: GibbsConfig = GibbsConfig(), seed: int = 0) -> LinkModel:
    """Gibbs GPGBN on the training graph; scores 1 - exp(-sum_t theta_i u theta_j) from the posterior means."""
    fit = gibbs(net.with_edges(split.train), config, seed)
    return LinkModel("gpgbn-gibbs", fit.embedding(), fit.link_probability, config.iterations - 1,
                     {"phi": fit.phi, "fit": fit})
