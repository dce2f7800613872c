"""UIF, User Interest Fusion: text -> vectors (knowledge encoder) -> adapter -> attention fuse layer.

Reconstructed [R] from the [S] description ("a low-parameter knowledge encoder turns the LLM text
into compact vectors; an attention fuse layer fuses the partitions") and the lineage MSA adapter [L]:

  h_i = [Enc(S_i) ; f_i]                       frozen text encoder + the structured fields, (P, d_in)
  z_i = MLP_adapt(h_i) + PE(recency_i)         (P, d)
  Z'  = LayerNorm(Z + MHSA(Z, key-padding mask))  self-attention across partitions (`self_attention=True`)
  a_i = softmax_i((W_q q_t) . (W_k z'_i) / sqrt(d))   q_t = target item embedding
  u   = sum_i a_i W_v z'_i                     the dense field handed to any backbone
A learned "no partition" slot is always present, so users with no closed partition get a valid u.
Without the self-attention (Z' = Z) the layer is target attention alone; the cascade already carries
context across partitions (S_i is written from S_{i-1}), and it halves the layer's cost.
The adapter runs once per distinct partition in a batch (partitions are shared by many samples).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tenfold.core.errors import InputError

# Signed numbers ("+0.25", "-0.5", "3.6", "67%") are tokens of their own, and so are one-letter words:
# scikit-learn's default pattern (\b\w\w+\b) turns "Drama +0.25" and "Drama -0.25" both into "drama 25".
TOKEN_PATTERN = r"[+-]?\d+(?:\.\d+)?%?|[^\W\d_]+"


class TextEncoder:
    """`fit(texts)` (may be a no-op) then `encode(texts) -> (n, dim) float32`."""

    dim: int = 0

    def fit(self, texts: list[str]) -> TextEncoder:
        return self

    def encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class HashingSVDEncoder(TextEncoder):
    """Default encoder, no weights: 1-2-grams of words and signed numbers, hashed, then TruncatedSVD on
    the hashed columns the fitting texts actually use (the rest are all-zero, so dropping them changes
    nothing but the cost). Texts with fewer distinct terms than `dim` (a tiny LM's near-empty answers)
    keep the width: the missing components are zero, and texts without any term encode as zeros."""

    def __init__(self, dim: int = 32, n_features: int = 2**18, seed: int = 0, token_pattern: str = TOKEN_PATTERN):
        from sklearn.feature_extraction.text import HashingVectorizer

        self.dim, self.seed = dim, seed
        self.vectorizer = HashingVectorizer(n_features=n_features, ngram_range=(1, 2), alternate_sign=False,
                                            token_pattern=token_pattern)
        self.svd = None
        self.columns = None

    def fit(self, texts):
        from sklearn.decomposition import TruncatedSVD

        if not texts:
            raise InputError("the text encoder needs texts to fit, got none")
        x = self.vectorizer.transform(texts).tocsc()
        self.columns = np.flatnonzero(np.diff(x.indptr))
        rank = min(self.dim, len(self.columns) - 1, len(texts) - 1)
        self.svd = TruncatedSVD(rank, random_state=self.seed).fit(x[:, self.columns]) if rank >= 1 else None
        return self

    def encode(self, texts):
        if self.columns is None:
            raise InputError("HashingSVDEncoder.encode called before fit")
        out = np.zeros((len(texts), self.dim), np.float32)
        if self.svd is not None:
            part = self.svd.transform(self.vectorizer.transform(texts).tocsc()[:, self.columns])
            out[:, :part.shape[1]] = part
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)


class SentenceEncoder(TextEncoder):
    """A sentence-transformer-style model from a local folder (mean pooling over tokens), e.g. all-MiniLM-L6-v2."""

    def __init__(self, path: str | os.PathLike, max_length: int = 256, batch: int = 32):
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise InputError(f"{folder} is not a local transformers encoder folder (no config.json)")
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self.max_length, self.batch = max_length, batch
        self.dim = self.model.config.hidden_size

    @torch.no_grad()
    def encode(self, texts):
        out = []
        for s in range(0, len(texts), self.batch):
            enc = self.tokenizer(texts[s:s + self.batch], padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
            out.append(nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out).astype(np.float32)


def make_encoder(name: str = "hashing", dim: int = 32, seed: int = 0) -> TextEncoder:
    """'hashing' (default) or a local folder of a sentence-transformer model."""
    if name == "hashing":
        return HashingSVDEncoder(dim=dim, seed=seed)
    return SentenceEncoder(name)


class Adapter(nn.Module):
    """The low-parameter adapter MLP d_text -> hidden -> d (lineage arch [128, 32], [L])."""

    def __init__(self, d_text: int, d: int = 32, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_text, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def target_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum_i softmax_i(q . k_i / sqrt(d)) v_i over valid slots; q (B, d), k/v (B, P, d), mask (B, P) True = valid."""
    scores = torch.einsum("bd,bpd->bp", query, keys) / math.sqrt(query.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.einsum("bp,bpd->bd", weights, values)


def self_attention(z: torch.Tensor, mask: torch.Tensor, qkv: nn.Linear, out: nn.Linear, heads: int) -> torch.Tensor:
    """Multi-head self-attention over slots with a key-padding mask; z (B, P, d), mask (B, P) True = valid."""
    b, p, d = z.shape
    q, k, v = qkv(z).view(b, p, 3, heads, d // heads).permute(2, 0, 3, 1, 4)  # each (B, H, P, d_h)
    # softmax_j(q_i . k_j / sqrt(d_h)) v_j over valid j; PyTorch's fused kernel (2x faster on CPU here)
    attended = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    return out(attended.transpose(1, 2).reshape(b, p, d))


class InterestFusion(nn.Module):
    """Partition table (N, d_in) + slots (B, P) into it (-1 = none) + target query (B, d_query) -> (B, d)."""

    def __init__(self, d_in: int, d: int = 32, d_query: int = 32, max_partitions: int = 8, heads: int = 2,
                 hidden: int = 128, self_attention: bool = True):
        super().__init__()
        if d % heads:
            raise InputError(f"the fusion width {d} must divide by the number of heads {heads}")
        self.adapter = Adapter(d_in, d, hidden)
        self.recency = nn.Embedding(max_partitions, d)  # slot P-1 is the most recent partition
        self.null = nn.Parameter(torch.zeros(1, 1, d))
        if self_attention:
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.norm = nn.LayerNorm(d)
        self.w_q, self.w_k, self.w_v = nn.Linear(d_query, d), nn.Linear(d, d), nn.Linear(d, d)
        self.max_partitions, self.heads, self.self_attention = max_partitions, heads, self_attention

    def forward(self, table: torch.Tensor, slots: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        b, p = slots.shape
        if p > self.max_partitions:
            raise InputError(f"{p} partition slots but the fusion layer was built for {self.max_partitions}")
        mask = slots >= 0
        used, where = torch.unique(slots.clamp_min(0), return_inverse=True)
        z = self.adapter(table[used])[where]  # (B, P, d): the adapter once per distinct partition
        z = z + self.recency.weight[self.max_partitions - p:]  # right-aligned slots
        z = torch.cat([self.null.expand(b, 1, -1), z], dim=1)
        mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        if self.self_attention:
            z = self.norm(z + self_attention(z, mask, self.qkv, self.proj, self.heads))
        return target_attention(self.w_q(query), self.w_k(z), self.w_v(z), mask)


class LiberCTR(nn.Module):
    """Any backbone + LIBER: the fused interest vector enters the backbone as one extra dense field."""

    def __init__(self, backbone: nn.Module, fusion: InterestFusion):
        super().__init__()
        self.backbone, self.fusion = backbone, fusion

    def forward(self, batch: dict) -> torch.Tensor:
        query = self.backbone.embed.target(batch)
        u = self.fusion(batch["part_table"], batch["part_slots"], query)
        return self.backbone(batch, dense=u.unsqueeze(1))
