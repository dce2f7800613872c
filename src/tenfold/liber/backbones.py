"""CTR backbones in plain PyTorch (DIN, DCNv2, DeepFM), each taking optional extra dense fields.

`forward(batch, dense=None)`: `dense` is (B, F, d), F extra fields of the embedding width d (LIBER's
fused interest, a KAR vector, or any pretrained embedding). Batch keys: user (B,), item (B,),
hist_items (B, L) with 0 = padding, hist_ratings (B, L) in 0..5 (0 = padding or hidden). Sizes follow
the lineage defaults (embed 32, MLP [200, 80]) [L]. `FeatureEmbedding(use_user=False)` drops the
user-ID field, as KAR's CTR samples carry no user id [L] (the user-disjoint setting needs that: a
test user's id embedding would never have been trained).
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(d_in: int, hidden: tuple[int, ...], d_out: int | None = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), nn.ReLU()]
        d_in = h
    if d_out is not None:
        layers.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*layers)


class FeatureEmbedding(nn.Module):
    """User (optional), item (+ its genres) and rated-history embeddings, all of width d."""

    def __init__(self, n_users: int, n_items: int, item_genres: torch.Tensor, d: int = 32, use_user: bool = True):
        super().__init__()
        self.user = nn.Embedding(n_users + 1, d) if use_user else None
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.genre = nn.Linear(item_genres.shape[1], d, bias=False)
        self.rating = nn.Embedding(6, d, padding_idx=0)
        self.register_buffer("item_genres", item_genres.float(), persistent=False)  # (n_items + 1, G)
        self.d = d

    @property
    def n_user_fields(self) -> int:
        return 0 if self.user is None else 1

    def user_fields(self, batch: dict) -> list[torch.Tensor]:  # [] or [(B, d)]
        return [] if self.user is None else [self.user(batch["user"])]

    def target(self, batch: dict) -> torch.Tensor:  # (B, d)
        item = batch["item"]
        return self.item(item) + self.genre(self.item_genres[item])

    def history(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:  # (B, L, d), (B, L)
        h = batch["hist_items"]
        return self.item(h) + self.genre(self.item_genres[h]) + self.rating(batch["hist_ratings"]), h > 0


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).float()
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class DIN(nn.Module):
    """Deep Interest Network: local activation unit over the short history (Zhou et al. 2018)."""

    def __init__(self, embed: FeatureEmbedding, n_dense: int = 0, hidden: tuple[int, ...] = (200, 80)):
        super().__init__()
        d = embed.d
        self.embed = embed
        self.activation = mlp(4 * d, (36,))
        self.head = mlp((2 + embed.n_user_fields + n_dense) * d, hidden)

    def forward(self, batch: dict, dense: torch.Tensor | None = None) -> torch.Tensor:
        t = self.embed.target(batch)
        h, mask = self.embed.history(batch)
        tt = t.unsqueeze(1).expand_as(h)
        w = self.activation(torch.cat([h, tt, h - tt, h * tt], dim=-1)).squeeze(-1) * mask  # no softmax, as in DIN
        pooled = (w.unsqueeze(-1) * h).sum(1)
        parts = self.embed.user_fields(batch) + [t, pooled] + ([dense.flatten(1)] if dense is not None else [])
        return self.head(torch.cat(parts, dim=-1)).squeeze(-1)


class DCNv2(nn.Module):
    """DCN-V2 (Wang et al. 2021): x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, in parallel with a deep MLP."""

    def __init__(self, embed: FeatureEmbedding, n_dense: int = 0, layers: int = 2, hidden: tuple[int, ...] = (200, 80)):
        super().__init__()
        d_in = (2 + embed.n_user_fields + n_dense) * embed.d
        self.embed = embed
        self.cross = nn.ModuleList(nn.Linear(d_in, d_in) for _ in range(layers))
        self.deep = mlp(d_in, hidden, None)
        self.out = nn.Linear(d_in + hidden[-1], 1)

    def forward(self, batch: dict, dense: torch.Tensor | None = None) -> torch.Tensor:
        h, mask = self.embed.history(batch)
        parts = self.embed.user_fields(batch) + [self.embed.target(batch), masked_mean(h, mask)]
        x0 = torch.cat(parts + ([dense.flatten(1)] if dense is not None else []), dim=-1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.out(torch.cat([x, self.deep(x0)], dim=-1)).squeeze(-1)


class DeepFM(nn.Module):
    """DeepFM (Guo et al. 2017): first order + FM pairwise interactions over fields + a deep MLP."""

    def __init__(self, embed: FeatureEmbedding, n_dense: int = 0, hidden: tuple[int, ...] = (200, 80)):
        super().__init__()
        n_fields = 2 + embed.n_user_fields + n_dense
        self.embed = embed
        self.first = nn.Linear(n_fields * embed.d, 1)
        self.deep = mlp(n_fields * embed.d, hidden)

    def forward(self, batch: dict, dense: torch.Tensor | None = None) -> torch.Tensor:
        h, mask = self.embed.history(batch)
        fields = self.embed.user_fields(batch) + [self.embed.target(batch), masked_mean(h, mask)]
        e = torch.stack(fields, dim=1)  # (B, F, d)
        if dense is not None:
            e = torch.cat([e, dense], dim=1)
        fm = 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(-1)
        flat = e.flatten(1)
        return (self.first(flat) + self.deep(flat)).squeeze(-1) + fm


BACKBONES = {"din": DIN, "dcnv2": DCNv2, "deepfm": DeepFM}
