"""The competitors, one query (d,) against n keys: dense SDPA, dense ReLU^alpha, top-k by a full
scan, and a Quest-style block bound (Tang et al. 2024: per-block min/max keys bound <q, k> so whole
blocks are skipped)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tenfold.hsr.attention import relu_weights
from tenfold.hsr.index import QueryStats, roundoff_margin


def dense_softmax(q: torch.Tensor, K: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Softmax attention of one query through torch's scaled_dot_product_attention."""
    return F.scaled_dot_product_attention(q.view(1, 1, 1, -1), K[None, None], V[None, None]).view(-1)


def dense_relu(q, K, V, alpha: int = 1, bias: float = 0.0, scale: float | None = None) -> torch.Tensor:
    """ReLU^alpha attention over every key (O(n d))."""
    scale = 1.0 / math.sqrt(K.shape[1]) if scale is None else scale
    w = relu_weights(scale * (K @ q), bias, alpha)
    total = w.sum()
    return (w @ V) / total if total > 0 else torch.zeros(V.shape[1], dtype=V.dtype)


def topk_scan_softmax(q, K, V, k: int, scale: float | None = None) -> torch.Tensor:
    """Score every key (O(n d)), keep the k largest, softmax over them."""
    scale = 1.0 / math.sqrt(K.shape[1]) if scale is None else scale
    s = scale * (K @ q)
    top = s.topk(min(k, len(s)))
    return torch.softmax(top.values, 0) @ V[top.indices]


class BlockBound:
    """Quest-style: blocks of `block` consecutive keys with elementwise min/max; a block is read only
    when its upper bound sum_i max(q_i lo_i, q_i hi_i) can exceed the threshold (float64, with the
    rigorous round-off margin of `index.roundoff_margin`, so the ReLU answer is exact)."""

    def __init__(self, K: torch.Tensor, block: int = 64):
        n, d = K.shape
        pad = (-n) % block
        self.K, self.block, self.n = K, block, n
        Kp = torch.cat([K, K[:1].expand(pad, d)]) if pad else K
        blocks = Kp.double().view(-1, block, d)
        self.lo, self.hi = blocks.amin(1), blocks.amax(1)
        self.k_inf, self.k_2 = float(K.abs().max()), float(K.double().norm(dim=1).max())
        self.last_stats = QueryStats()

    def __len__(self) -> int:
        return self.n

    bound_cost = 2.0  # a block's bound: two d-dimensional dot products (with its maxima and its minima)

    def upper_bounds(self, q64: torch.Tensor) -> torch.Tensor:
        """(blocks,) float64 upper bounds of <q, k> over each block (before the round-off margin)."""
        return self.hi @ q64.clamp(min=0) + self.lo @ q64.clamp(max=0)

    def report(self, q: torch.Tensor, b: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, scores) of every key with <q, k> > b."""
        q64 = q.double()
        margin = roundoff_margin(q64, b, self.K.dtype, self.k_inf, self.k_2)
        upper = self.upper_bounds(q64)
        blocks = torch.nonzero(upper > b - margin).flatten()
        ids = (blocks[:, None] * self.block + torch.arange(self.block)).flatten()
        ids = ids[ids < self.n]
        s = self.K[ids] @ q
        keep = s > b
        self.last_stats = QueryStats(scored=len(ids), reported=int(keep.sum()), bounds=len(upper))
        return ids[keep], s[keep]

    def relu(self, q, V, alpha: int = 1, bias: float = 0.0, scale: float | None = None) -> torch.Tensor:
        """ReLU^alpha attention of one query over the keys of the blocks that can qualify."""
        scale = 1.0 / math.sqrt(self.K.shape[1]) if scale is None else scale
        ids, s = self.report(scale * q, bias)
        w = relu_weights(s, bias, alpha)
        total = w.sum()
        return (w @ V[ids]) / total if total > 0 else torch.zeros(V.shape[1], dtype=V.dtype)
