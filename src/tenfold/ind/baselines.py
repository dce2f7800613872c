"""The competing methods, each scoring an author's papers (high = correctly assigned):
hand-made features + logistic regression (LightGBM too when installed), a GCN regressor (the official
KDD Cup GCN baseline: GCN -> scalar, MSE against 0/1 labels), GCCAD alone (tenfold.ind.gccad) and the
LM on titles only (MIND stage 1, tenfold.ind.model)."""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tenfold.ind.graph import AuthorGraph

FEATURES = ("coauthor_mean", "coauthor_max", "org_mean", "org_max", "venue_mean", "venue_max",
            "degree", "text_cos", "log_papers")


def handmade_features(g: AuthorGraph) -> np.ndarray:
    """(n, 9) per paper: mean/max co-author, org and venue overlap with the author's other papers, the
    share of papers it links to, cosine of its text vector to the leave-one-out profile mean, log n."""
    n = len(g.pids)
    dense = torch.zeros(n, n, 3)
    if g.edge_index.numel():
        dense[g.edge_index[0], g.edge_index[1]] = g.edge_attr
    others = max(1, n - 1)
    mean = dense.sum(1) / others
    mx = dense.max(1).values
    degree = (dense.max(2).values > 1e-3).float().sum(1) / others
    total = g.x.sum(0, keepdim=True)
    loo = (total - g.x) / others
    cos = F.cosine_similarity(g.x, loo, dim=1)
    cols = [mean[:, 0], mx[:, 0], mean[:, 1], mx[:, 1], mean[:, 2], mx[:, 2], degree, cos,
            torch.full((n,), float(np.log(n)))]
    return torch.stack(cols, 1).numpy().astype(np.float64)


class FeatureClassifier:
    """Hand-made features + logistic regression (kind='lr') or LightGBM (kind='lgbm', when installed)."""

    def __init__(self, kind: str = "lr", seed: int = 0):
        self.kind, self.seed = kind, seed

    @staticmethod
    def lightgbm_available() -> bool:
        return importlib.util.find_spec("lightgbm") is not None

    def fit(self, graphs: list[AuthorGraph]) -> FeatureClassifier:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.concatenate([handmade_features(g) for g in graphs])
        y = np.concatenate([g.y.numpy() for g in graphs]).astype(int)
        if self.kind == "lgbm":
            import lightgbm

            self.model_ = lightgbm.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15,
                                                  random_state=self.seed, verbose=-1).fit(x, y)
        else:
            self.model_ = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced")).fit(x, y)
        return self

    def scores(self, g: AuthorGraph) -> np.ndarray:
        return self.model_.predict_proba(handmade_features(g))[:, 1]


class GCNBaseline(nn.Module):
    """GCN(in -> hidden -> 1) on the author graph, regressed onto the 0/1 labels with MSE."""

    def __init__(self, in_dim: int, hidden: int = 64, dropout: float = 0.5):
        from torch_geometric.nn import GCNConv

        super().__init__()
        self.conv1, self.conv2 = GCNConv(in_dim, hidden), GCNConv(hidden, 1)
        self.dropout = dropout

    def forward(self, g: AuthorGraph) -> torch.Tensor:
        h = F.dropout(F.relu(self.conv1(g.x, g.edge_index, g.edge_weight)), self.dropout, self.training)
        return self.conv2(h, g.edge_index, g.edge_weight).squeeze(1)

    @torch.no_grad()
    def scores(self, g: AuthorGraph) -> np.ndarray:
        self.eval()
        return self(g).numpy()


def train_gcn(graphs: list[AuthorGraph], hidden: int = 64, epochs: int = 50, lr: float = 5e-3, seed: int = 0) -> GCNBaseline:
    torch.manual_seed(seed)
    model = GCNBaseline(graphs[0].x.shape[1], hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for i in torch.randperm(len(graphs), generator=gen).tolist():
            loss = F.mse_loss(model(graphs[i]), graphs[i].y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
