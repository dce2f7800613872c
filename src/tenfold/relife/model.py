"""RELIFE: re-ranking with list-level hybrid feedback (Weng et al., arXiv 2410.20778).

The module names and their roles are the paper's (abstract and the review's architecture summary);
the equations are the research note's reconstruction [R] (shared/research/recsys.md 2.3), marked
with its step numbers, because the paper's full text could not be read here. Notation:
candidates C = (c_1..c_n) in initial-ranker order, history H = (L_1..L_m) of exposed lists with 0/1
feedback, d = model width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tenfold.core.errors import InputError

CONTRASTIVE = ("user", "label")


@dataclass(frozen=True)
class RelifeConfig:
    """Widths and switches. The paper's values are unknown here [R]; defaults follow the lineage
    (MIR eb_dim 16 / hidden 64) at a CPU-friendly size; lambda and tau are our choices."""

    n_items: int
    n_cats: int
    list_len: int = 10
    history_lists: int = 5
    dim: int = 32
    heads: int = 2
    use_icc: bool = True
    use_dim: bool = True
    use_spm: bool = True
    use_cpe: bool = True
    use_position: bool = True  # candidate position embeddings (initial-ranker order)
    contrastive: str = "user"  # reading (a) same-user InfoNCE | (b) "label": label-teacher InfoNCE
    cl_weight: float = 0.1  # lambda
    cl_temperature: float = 0.2  # tau
    orth_weight: float = 0.0  # optional disentanglement penalty on r+ / r- (note 2.3 step 2)

    def __post_init__(self) -> None:
        if self.contrastive not in CONTRASTIVE:
            raise InputError(f"contrastive must be one of {CONTRASTIVE}, got {self.contrastive!r}")
        if self.dim % self.heads:
            raise InputError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.cl_temperature <= 0:
            raise InputError(f"cl_temperature must be positive, got {self.cl_temperature}")


# ---------------------------------------------------------------- shared layers

class ListEmbedding(nn.Module):
    """Embedding layer: e(v) = E_item[v] + E_genre[g(v)]; candidates add a projection of the ranker score."""

    def __init__(self, n_items: int, n_cats: int, dim: int):
        super().__init__()
        self.item = nn.Embedding(n_items, dim, padding_idx=0)
        self.cat = nn.Embedding(n_cats, dim, padding_idx=0)
        self.score = nn.Linear(1, dim)

    def items(self, items: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        return self.item(items) + self.cat(cats)

    def candidates(self, batch: dict) -> torch.Tensor:
        """(B, L, d) candidate embeddings with the initial-ranker score as a dense feature."""
        return self.items(batch["items"], batch["cats"]) + self.score(batch["scores"].unsqueeze(-1).float())


def masked_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over valid keys; rows with no valid key return 0.

    q (B, h, Q, dh), k/v (B, h, K, dh), key_mask (B, K) or (B, Q, K) bool.
    """
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, h, Q, K)
    m = key_mask[:, None, None, :] if key_mask.dim() == 2 else key_mask[:, None]
    weights = torch.softmax(logits.masked_fill(~m, -1e9), dim=-1)
    return (weights @ v) * m.any(-1, keepdim=True).to(v.dtype)


class Attention(nn.Module):
    """Multi-head attention with key masks that tolerates queries with no valid key (empty history)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        B, Q, d = query.shape
        split = lambda x: x.view(B, x.shape[1], self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        out = masked_softmax_attention(split(self.q(query)), split(self.k(keys)), split(self.v(keys)), key_mask)
        return self.o(out.transpose(1, 2).reshape(B, Q, d))


class AttentionBlock(nn.Module):
    """Post-LN transformer block (self-attention + feed-forward) with a key-padding mask."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attn = Attention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x + self.attn(x, x, mask))
        return self.norm2(h + self.ffn(h))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim -2 of x (..., n, d) counting only mask (..., n); 0 for empty rows."""
    w = mask.unsqueeze(-1).to(x.dtype)
    return (x * w).sum(-2) / w.sum(-2).clamp_min(1.0)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pointwise BCE averaged over real (unpadded) candidates (note 2.3 step 6)."""
    loss = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
    return (loss * mask).sum() / mask.sum().clamp_min(1)


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float, valid: torch.Tensor) -> torch.Tensor:
    """InfoNCE over the batch with cosine similarity: -log exp(s_ii/tau) / sum_j exp(s_ij/tau); rows in `valid` only."""
    a, p = F.normalize(anchor[valid], dim=-1), F.normalize(positive[valid], dim=-1)
    if len(a) < 2:
        return anchor.sum() * 0.0
    logits = a @ p.T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


# ---------------------------------------------------------------- RELIFE modules

class DisentangledInterestMiner(nn.Module):
    """Step 2: separate attention towers over clicked (interests) and unclicked (disinterests) history.

    r_j^+ = Attn_+(q = C^_j, K = V = E_P), r_j^- = Attn_-(q = C^_j, K = V = E_N).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.interest = Attention(dim, heads)
        self.disinterest = Attention(dim, heads)

    def forward(self, cand: torch.Tensor, hist: torch.Tensor, hist_labels: torch.Tensor,
                hist_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positive = hist_mask & (hist_labels > 0.5)  # (B, T)
        negative = hist_mask & (hist_labels <= 0.5)
        return self.interest(cand, hist, positive), self.disinterest(cand, hist, negative)


class SequentialPreferenceMixer(nn.Module):
    """Step 3: hybrid feedback tokens z_{k,l} = e(v_{k,l}) + f(y_{k,l}) + p_l + s_k, a transformer over
    the whole history, then r_j^mix = Attn(q = C^_j, K = V = Z')."""

    def __init__(self, dim: int, heads: int, list_len: int, history_lists: int):
        super().__init__()
        self.feedback = nn.Embedding(2, dim)
        self.position = nn.Embedding(list_len, dim)
        self.list_index = nn.Embedding(max(history_lists, 1), dim)
        self.encoder = AttentionBlock(dim, heads)
        self.read = Attention(dim, heads)

    def forward(self, cand: torch.Tensor, hist: torch.Tensor, hist_labels: torch.Tensor,
                hist_mask: torch.Tensor) -> torch.Tensor:
        B, H, L, d = hist.shape
        z = (hist + self.feedback(hist_labels.long()) + self.position.weight[:L]
             + self.list_index.weight[:H, None, :])
        z, mask = z.reshape(B, H * L, d), hist_mask.reshape(B, H * L)
        return self.read(cand, self.encoder(z, mask), mask)


class ComparisonAwarePatternExtractor(nn.Module):
    """Step 4: within-list comparison features c_i = sum_{l != i} softmax_l(phi(x_i, x_l)) W (x_i - x_l),
    list patterns g_k = Pool_i MLP([c_i; f(y_i)]) (history) and g_C = Pool_j MLP(c_j) (candidates,
    label-free), and the pattern context r_pat = Attn(q = g_C, K = V = {g_k})."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.phi_q, self.phi_k = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.diff = nn.Linear(dim, dim, bias=False)
        self.feedback = nn.Embedding(2, dim)
        self.hist_pattern = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.cand_pattern = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.read = Attention(dim, heads)

    def compare(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """c (..., n, d) for lists x (..., n, d); an item is compared with the other valid items only."""
        n = x.shape[-2]
        logits = self.phi_q(x) @ self.phi_k(x).transpose(-1, -2) / math.sqrt(x.shape[-1])
        valid = mask.unsqueeze(-2) & ~torch.eye(n, dtype=torch.bool, device=x.device)
        w = torch.softmax(logits.masked_fill(~valid, -1e9), dim=-1) * valid.any(-1, keepdim=True)
        wx = self.diff(x)  # W (x_i - x_l) = W x_i - W x_l, weights summing to 1 (or 0)
        return wx * w.sum(-1, keepdim=True) - w @ wx

    def history_patterns(self, hist: torch.Tensor, hist_labels: torch.Tensor, hist_mask: torch.Tensor) -> torch.Tensor:
        """g_k (B, H, d) for labelled lists (B, H, L, d)."""
        c = self.compare(hist, hist_mask)
        g = self.hist_pattern(torch.cat([c, self.feedback(hist_labels.long())], -1))
        return masked_mean(g, hist_mask)

    def forward(self, cand: torch.Tensor, cand_mask: torch.Tensor, g_hist: torch.Tensor,
                list_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_j (B, L, d), g_C (B, d), r_pat (B, d))."""
        c = self.compare(cand, cand_mask)
        g_cand = masked_mean(self.cand_pattern(c), cand_mask)
        r_pat = self.read(g_cand.unsqueeze(1), g_hist, list_mask).squeeze(1)
        return c, g_cand, r_pat


class Relife(nn.Module):
    """The full model; `forward` gives logits (B, L), `loss` adds the contrastive alignment (step 5)."""

    def __init__(self, config: RelifeConfig):
        super().__init__()
        cfg = self.config = config
        d = cfg.dim
        self.embed = ListEmbedding(cfg.n_items, cfg.n_cats, d)
        self.position = nn.Embedding(cfg.list_len, d)
        self.icc = AttentionBlock(d, cfg.heads) if cfg.use_icc else None
        self.miner = DisentangledInterestMiner(d, cfg.heads) if cfg.use_dim else None
        self.spm = SequentialPreferenceMixer(d, cfg.heads, cfg.list_len, cfg.history_lists) if cfg.use_spm else None
        self.cpe = ComparisonAwarePatternExtractor(d, cfg.heads) if cfg.use_cpe else None
        width = d * (2 + 2 * cfg.use_dim + cfg.use_spm + 2 * cfg.use_cpe)
        self.head = nn.Sequential(nn.Linear(width, 2 * d), nn.ReLU(), nn.Linear(2 * d, 1))

    def encode(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Logits (B, L) and the pattern vectors the contrastive loss needs."""
        cfg, mask = self.config, batch["mask"]
        e_c = self.embed.candidates(batch)  # (B, L, d)
        x = e_c + self.position.weight[: e_c.shape[1]] if cfg.use_position else e_c
        c_hat = self.icc(x, mask) if self.icc is not None else x  # step 1: C^ = MHSA(E_C + P)
        hist = self.embed.items(batch["hist_items"], batch["hist_cats"])  # (B, H, L, d)
        B, H, L, d = hist.shape
        flat, flat_y, flat_m = hist.reshape(B, H * L, d), batch["hist_labels"].reshape(B, H * L), batch["hist_mask"].reshape(B, H * L)
        parts, aux = [c_hat, e_c], {}
        if self.miner is not None:
            r_pos, r_neg = self.miner(c_hat, flat, flat_y, flat_m)
            parts += [r_pos, r_neg]
            aux["r_pos"], aux["r_neg"] = r_pos, r_neg
        if self.spm is not None:
            parts.append(self.spm(c_hat, hist, batch["hist_labels"], batch["hist_mask"]))
        if self.cpe is not None:
            list_mask = batch["hist_mask"].any(-1)  # (B, H)
            g_hist = self.cpe.history_patterns(hist, batch["hist_labels"], batch["hist_mask"])
            c, g_cand, r_pat = self.cpe(e_c, mask, g_hist, list_mask)
            parts += [c, r_pat.unsqueeze(1).expand(-1, c.shape[1], -1)]
            aux.update(g_cand=g_cand, g_hist=masked_mean(g_hist, list_mask), has_history=list_mask.any(-1), e_c=e_c)
        logits = self.head(torch.cat(parts, -1)).squeeze(-1)  # step 6
        return logits, aux

    def forward(self, batch: dict) -> torch.Tensor:
        return self.encode(batch)[0]

    def contrastive_loss(self, batch: dict, aux: dict) -> torch.Tensor:
        """Step 5: reading (a) aligns g_C with the same user's mean historical pattern against other users
        in the batch; reading (b) aligns the label-free g_C with the labelled candidate pattern."""
        cfg = self.config
        if cfg.contrastive == "user":
            return info_nce(aux["g_cand"], aux["g_hist"], cfg.cl_temperature, aux["has_history"])
        g_lab = self.cpe.history_patterns(aux["e_c"].unsqueeze(1), batch["labels"].unsqueeze(1), batch["mask"].unsqueeze(1))
        return info_nce(aux["g_cand"], g_lab.squeeze(1), cfg.cl_temperature, batch["mask"].any(-1))

    def loss(self, batch: dict) -> torch.Tensor:
        """L = sum_j BCE(y^_j, y_j) + lambda L_cl (+ orth * mean cos^2(r+, r-))."""
        cfg = self.config
        logits, aux = self.encode(batch)
        loss = masked_bce(logits, batch["labels"], batch["mask"])
        if self.cpe is not None and cfg.cl_weight > 0:
            loss = loss + cfg.cl_weight * self.contrastive_loss(batch, aux)
        if self.miner is not None and cfg.orth_weight > 0:
            cos = F.cosine_similarity(aux["r_pos"], aux["r_neg"], dim=-1)
            loss = loss + cfg.orth_weight * (cos.pow(2) * batch["mask"]).sum() / batch["mask"].sum().clamp_min(1)
        return loss
