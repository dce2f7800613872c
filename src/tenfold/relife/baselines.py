"""The competing re-rankers, all on the same embedding layer, batch format and loss as RELIFE.

* `InitialRanker`: keeps the initial ranker's order (no training).
* `DLCM` (Ai et al., SIGIR'18): a GRU reads the list from the bottom up; each item is scored by
  local attention with the final state, phi(o_j, s) = v . (o_j * tanh(W s + b)).
* `PRM` (Pei et al., RecSys'19): transformer blocks over the list with position embeddings.
* `SetRank` (Pang et al., SIGIR'20): stacked self-attention without positions, so its scores are
  permutation-equivariant.
* `MIRLite`: a simplified MIR-style (Xi et al., SIGIR'22) history re-ranker that reads only the
  *clicked* history items (item-level positive feedback, what RELIFE argues is not enough): a
  PRM block over the candidates, then each candidate attends over the user's clicked items. It is
  not the full MIR (no set-to-list interaction module, no SLAttention).

Only `MIRLite` reads the history; RELIFE reads clicked and unclicked items with their lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tenfold.relife.model import Attention, AttentionBlock, ListEmbedding, masked_bce


@dataclass(frozen=True)
class BaselineConfig:
    n_items: int
    n_cats: int
    list_len: int = 10
    dim: int = 32
    heads: int = 2
    blocks: int = 2


class InitialRanker(nn.Module):
    """Scores -position, so sorting keeps the initial order."""

    trainable = False

    def __init__(self, config: BaselineConfig | None = None):
        super().__init__()

    def forward(self, batch: dict) -> torch.Tensor:
        L = batch["items"].shape[1]
        return -torch.arange(L, dtype=torch.float32).expand(batch["items"].shape[0], L)


class DLCM(nn.Module):
    def __init__(self, config: BaselineConfig):
        super().__init__()
        d = config.dim
        self.embed = ListEmbedding(config.n_items, config.n_cats, d)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.state = nn.Linear(d, d)
        self.v = nn.Linear(d, 1, bias=False)

    def forward(self, batch: dict) -> torch.Tensor:
        x, mask = self.embed.candidates(batch), batch["mask"]
        lengths = mask.sum(1).clamp_min(1)
        # bottom-up: the reversed valid prefix of each list, padding kept at the end
        idx = (lengths[:, None] - 1 - torch.arange(x.shape[1])).clamp_min(0)
        idx = torch.where(mask, idx, torch.arange(x.shape[1]).expand_as(idx))
        rev = torch.take_along_dim(x, idx.unsqueeze(-1), 1)
        packed = nn.utils.rnn.pack_padded_sequence(rev, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, s = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        o = torch.zeros_like(out).scatter(1, idx.unsqueeze(-1).expand_as(out), out)  # back to list order
        return self.v(o * torch.tanh(self.state(s[-1])).unsqueeze(1)).squeeze(-1)

    def loss(self, batch: dict) -> torch.Tensor:
        return masked_bce(self(batch), batch["labels"], batch["mask"])


class PRM(nn.Module):
    def __init__(self, config: BaselineConfig):
        super().__init__()
        d = config.dim
        self.embed = ListEmbedding(config.n_items, config.n_cats, d)
        self.position = nn.Embedding(config.list_len, d)
        self.blocks = nn.ModuleList(AttentionBlock(d, config.heads) for _ in range(config.blocks))
        self.out = nn.Linear(d, 1)

    def forward(self, batch: dict) -> torch.Tensor:
        x = self.embed.candidates(batch)
        x = x + self.position.weight[: x.shape[1]]
        for block in self.blocks:
            x = block(x, batch["mask"])
        return self.out(x).squeeze(-1)

    def loss(self, batch: dict) -> torch.Tensor:
        return masked_bce(self(batch), batch["labels"], batch["mask"])


class SetRank(nn.Module):
    def __init__(self, config: BaselineConfig):
        super().__init__()
        d = config.dim
        self.embed = ListEmbedding(config.n_items, config.n_cats, d)
        self.blocks = nn.ModuleList(AttentionBlock(d, config.heads) for _ in range(config.blocks))
        self.out = nn.Linear(d, 1)

    def forward(self, batch: dict) -> torch.Tensor:
        x = self.embed.candidates(batch)
        for block in self.blocks:
            x = block(x, batch["mask"])
        return self.out(x).squeeze(-1)

    def loss(self, batch: dict) -> torch.Tensor:
        return masked_bce(self(batch), batch["labels"], batch["mask"])


class MIRLite(nn.Module):
    def __init__(self, config: BaselineConfig):
        super().__init__()
        d = config.dim
        self.embed = ListEmbedding(config.n_items, config.n_cats, d)
        self.position = nn.Embedding(config.list_len, d)
        self.block = AttentionBlock(d, config.heads)
        self.history = Attention(d, config.heads)
        self.out = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Linear(d, 1))

    def forward(self, batch: dict) -> torch.Tensor:
        x = self.embed.candidates(batch)
        x = self.block(x + self.position.weight[: x.shape[1]], batch["mask"])
        hist = self.embed.items(batch["hist_items"], batch["hist_cats"]).flatten(1, 2)
        clicked = (batch["hist_mask"] & (batch["hist_labels"] > 0.5)).flatten(1, 2)
        return self.out(torch.cat([x, self.history(x, hist, clicked)], -1)).squeeze(-1)

    def loss(self, batch: dict) -> torch.Tensor:
        return masked_bce(self(batch), batch["labels"], batch["mask"])


BASELINES = {"initial": InitialRanker, "dlcm": DLCM, "prm": PRM, "setrank": SetRank, "mir": MIRLite}
