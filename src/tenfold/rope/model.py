"""A small decoder-only transformer with interchangeable position encodings: RoPE, NoPE, learned
absolute, ALiBi; L blocks with separate weights, or one block looped k times (depth grows with input).

RoPE (Su et al. 2021; the paper's Definition of RoPE attention): rotate each (q, k) pair of coordinates
(x_j, x_{j + h/2}) at position t by the angle t * theta_j, theta_j = base^{-2j/h}. Then
<R_s q, R_t k> = <q, R_{t-s} k> depends on positions only through t - s (tested).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tenfold.core.errors import check

POSITIONS = ("rope", "nope", "absolute", "alibi")


@dataclass(frozen=True)
class ModelConfig:
    """Our tiny defaults (the paper is theory: it fixes no sizes). position: rope | nope | absolute | alibi."""

    vocab_size: int
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 2
    d_ff: int = 64
    max_len: int = 512
    position: str = "rope"
    rope_base: float = 10000.0  # LLaMA's base
    looped: bool = False  # one shared block applied `loops` times instead of n_layers blocks

    @classmethod
    def sized(cls, vocab_size: int, d_model: int, n_layers: int, position: str = "rope", looped: bool = False,
              head_dim: int = 16) -> ModelConfig:
        """Heads of `head_dim` dimensions and a 2x MLP: the one knob is the width `d_model`."""
        return cls(vocab_size, d_model, max(1, d_model // head_dim), n_layers, 2 * d_model, position=position,
                   looped=looped)

    def __post_init__(self) -> None:
        check(self.position in POSITIONS, f"position must be one of {', '.join(POSITIONS)}, got {self.position!r}")
        check(self.d_model % self.n_heads == 0 and (self.d_model // self.n_heads) % 2 == 0,
              f"d_model ({self.d_model}) / n_heads ({self.n_heads}) must be an even integer (RoPE rotates pairs)")
        check(self.n_layers >= 1, f"n_layers must be >= 1, got {self.n_layers}")

    def to_dict(self) -> dict:
        return asdict(self)


def rope_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of t * theta_j for each position t: (S, head_dim), the half-split layout."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = positions.double()[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., S, head_dim) pairwise: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi head slopes 2^(-8 i / H), i = 1..H (Press et al. 2022)."""
    return torch.tensor([2.0 ** (-8.0 * (i + 1) / n_heads) for i in range(n_heads)])


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, S, _ = x.shape
        H = self.cfg.n_heads
        q, k, v = self.qkv(x).view(B, S, 3, H, -1).permute(2, 0, 3, 1, 4)  # each (B, H, S, head_dim)
        if self.cfg.position == "alibi":
            pos = torch.arange(S, device=x.device)
            dist = (pos[:, None] - pos[None, :]).to(x.dtype)
            bias = (-alibi_slopes(H).to(x)[:, None, None] * dist).masked_fill(dist < 0, float("-inf"))  # (H, S, S)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            if self.cfg.position == "rope":
                cos, sin = rope_angles(torch.arange(S), q.shape[-1], self.cfg.rope_base)
                cos, sin = cos.to(x.device), sin.to(x.device)
                q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, S, -1))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class FormulaTransformer(nn.Module):
    """Causal LM over formula tokens. forward(ids, loops) -> logits (B, S, vocab)."""

    def __init__(self, cfg: ModelConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        torch.manual_seed(seed)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.position == "absolute" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(1 if cfg.looped else cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, ids: torch.Tensor, loops: int | None = None) -> torch.Tensor:
        S = ids.shape[1]
        check(S <= self.cfg.max_len, f"sequence of {S} tokens is longer than the model's max_len {self.cfg.max_len}")
        x = self.embed(ids)
        if self.pos is not None:
            x = x + self.pos(torch.arange(S, device=ids.device))
        if self.cfg.looped:
            k = loops if loops is not None else self.cfg.n_layers
            check(k >= 1, f"loops must be >= 1, got {k}")
            for _ in range(k):
                x = self.blocks[0](x)
        else:
            for block in self.blocks:
                x = block(x)
        return self.head(self.ln_f(x))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def rope_scores(q: torch.Tensor, k: torch.Tensor, s: int, t: int, base: float = 10000.0) -> torch.Tensor:
    """<R_s q, R_t k>: the RoPE attention logit of a query at position s and a key at position t."""
    cos, sin = rope_angles(torch.tensor([s, t]), q.shape[-1], base)
    return (apply_rope(q, cos[0], sin[0]) * apply_rope(k, cos[1], sin[1])).sum(-1)
