"""Competing methods with one interface: fit on the training graph, pick the step on validation AUC,
return a `LinkModel` (node embedding + a link scorer).

- GAE / VGAE (Kipf & Welling 2016): torch_geometric's `GAE`/`VGAE` losses on the same 2-layer GCN
  (`model.GraphConv`) and the same sparse log(1 + counts) input as WGCAE, trained through
  `tenfold.core.accel` for the same number of Adam steps at the same learning rate.
- Gibbs GPGBN: `gpgbn.gibbs` on the training graph.
- LDA (Blei et al. 2003): scikit-learn's `LatentDirichletAllocation` on the words alone (no links),
  the topic-quality baseline.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from tenfold.data.planetoid import DocumentNetwork
from tenfold.wgae.evaluate import LinkModel, LinkSplit, auc_ap
from tenfold.wgae.gpgbn import GibbsConfig, gibbs
from tenfold.wgae.model import GraphConv, GraphTensors


class GraphAutoencoder(nn.Module):
    """GCN encoder (hidden -> out) with an inner-product decoder; forward returns the training loss
    (reconstruction on positives and sampled negatives, plus KL / N for the variational model)."""

    def __init__(self, in_dim: int, hidden: int, out: int, variational: bool):
        super().__init__()
        from torch_geometric.nn import GAE, VGAE

        self.conv1 = GraphConv(in_dim, hidden)
        self.conv_mu = GraphConv(hidden, out)
        self.conv_logstd = GraphConv(hidden, out) if variational else None
        self.pyg = VGAE(self._encode) if variational else GAE(self._encode)

    def _encode(self, g: GraphTensors):
        h = self.conv1(g.x, g).relu()
        if self.conv_logstd is None:
            return self.conv_mu(h, g)
        return self.conv_mu(h, g), self.conv_logstd(h, g).clamp(max=10)

    def embed(self, g: GraphTensors) -> torch.Tensor:
        """The mean embedding (no sampling)."""
        out = self._encode(g)
        return out[0] if isinstance(out, tuple) else out

    def forward(self, g: GraphTensors, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        z = self.pyg.encode(g)
        loss = self.pyg.recon_loss(z, pos, neg)
        if self.conv_logstd is not None:
            loss = loss + self.pyg.kl_loss() / g.n
        return loss


def _inner_product_scorer(z: torch.Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """Pairs ranked by z_i . z_j in float64: the order of sigmoid(z_i . z_j), without the ties a float32
    sigmoid makes once it saturates at 1 (AUC and AP depend on the order only)."""
    z = z.double()

    def score(pairs: np.ndarray) -> np.ndarray:
        p = torch.as_tensor(pairs)
        return (z[p[0]] * z[p[1]]).sum(-1).numpy()

    return score


def sample_negatives(n: int, count: int, links: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`count` uniform node pairs i != j that are not training links (2, count); vectorised rejection."""
    keys = links[0] * n + links[1]
    out = torch.empty((2, 0), dtype=torch.long)
    while out.shape[1] < count:
        i, j = torch.randint(0, n, (2, 2 * count + 8), generator=generator)
        lo, hi = torch.minimum(i, j), torch.maximum(i, j)
        keep = (lo != hi) & ~torch.isin(lo * n + hi, keys)
        out = torch.cat([out, torch.stack([lo[keep], hi[keep]])], 1)
    return out[:, :count]


def fit_autoencoder(kind: str, net: DocumentNetwork, split: LinkSplit, seed: int = 0, steps: int = 200,
                    lr: float = 0.01, hidden: int = 64, out: int = 16, eval_every: int = 5) -> LinkModel:
    """kind in {"gae", "vgae"}: `steps` Adam steps, validation AUC every `eval_every` steps, best kept."""
    from tenfold.core.accel import accelerator

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train_net = net.with_edges(split.train)
    acc = accelerator()
    g = GraphTensors.from_network(train_net).to(acc.device)
    pos = torch.as_tensor(split.train, dtype=torch.long, device=acc.device)
    model = GraphAutoencoder(net.n_words, hidden, out, variational=kind == "vgae").to(acc.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model, opt = acc.prepare(model, opt)
    core = acc.unwrap_model(model)
    best = (-1.0, None, -1)
    for step in range(steps):
        model.train()
        neg = sample_negatives(g.n, pos.shape[1], pos.cpu(), gen).to(acc.device)
        loss = model(g, pos, neg)
        opt.zero_grad()
        acc.backward(loss)
        opt.step()
        if step % eval_every == 0 or step == steps - 1:
            core.eval()
            with torch.no_grad():
                scorer = _inner_product_scorer(core.embed(g).cpu())
            val = auc_ap(scorer(split.val_pos), scorer(split.val_neg))[0]
            if val > best[0]:
                best = (val, copy.deepcopy(core.state_dict()), step)
    core.load_state_dict(best[1])
    core.eval()
    with torch.no_grad():
        z = core.embed(g).cpu()
    return LinkModel(kind, z.numpy(), _inner_product_scorer(z), best[2], val_auc=best[0])


def fit_gibbs(net: DocumentNetwork, split: LinkSplit, config: GibbsConfig = GibbsConfig(), seed: int = 0) -> LinkModel:
    """Gibbs GPGBN on the training graph; ranks pairs by sum_t theta_i u theta_j from the posterior means
    (as 1 - exp(-rate) would, without saturating at large rates)."""
    from tenfold.wgae.gpgbn import link_rate

    fit = gibbs(net.with_edges(split.train), config, seed)
    return LinkModel("gpgbn-gibbs", fit.embedding(), lambda pairs: link_rate(fit.theta, fit.u, pairs),
                     config.iterations - 1, {"phi": fit.phi, "fit": fit})


def fit_lda(net: DocumentNetwork, topics: int, seed: int = 0, max_iter: int = 50) -> np.ndarray:
    """LDA topics (V, K), columns on the simplex, from the word counts alone (scikit-learn, batch variational)."""
    import scipy.sparse as sp
    from sklearn.decomposition import LatentDirichletAllocation

    counts = sp.csr_matrix((net.vals, (net.rows, net.cols)), shape=(net.n_nodes, net.n_words))
    lda = LatentDirichletAllocation(n_components=topics, learning_method="batch", max_iter=max_iter,
                                    random_state=seed).fit(counts)
    phi = lda.components_.T
    return phi / phi.sum(0, keepdims=True)
