"""RELIFE: re-ranking with list-level hybrid feedback (Weng et al., arXiv 2410.20778).

The module names and their roles are the paper's (abstract, the review's architecture summary); the
equations are the research note's reconstruction [R] (shared/research/recsys.md 2.3), marked with its
step numbers, because the paper's full text could not be read here. Notation: candidates
C = (c_1..c_n) in initial-ranker order, history H = (L_1..L_m) of exposed lists with 0/1 feedback,
d = model width.

Every model in this package returns `(logits (B, L), extra_loss)` from `forward`; the training loop
adds the pointwise objective (`pointwise_loss`), so a data-parallel wrapper sees one forward call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tenfold.core.errors import InputError

CONTRASTIVE = ("user", "label")
MAX_DIM = 1024  # widths beyond this are refused at once (the lineage uses 16-64)


@dataclass(frozen=True)
class RelifeConfig:
    """Widths and switches. The paper's values are unknown here [R]; defaults follow the lineage
    (MIR eb_dim 16) at a CPU-friendly size; lambda and tau are our choices."""

    n_items: int
    n_cats: int
    list_len: int = 10
    history_lists: int = 4
    dim: int = 16
    heads: int = 1
    use_icc: bool = True
    use_dim: bool = True
    use_spm: bool = True
    use_cpe: bool = True
    use_position: bool = True  # candidate position embeddings (initial-ranker order)
    use_history: bool = True  # ablation "history off": every history list masked
    hybrid: bool = True  # ablation "clicks only": False keeps only the clicked history items
    contrastive: str = "user"  # reading (a) same-user InfoNCE | (b) "label": label-teacher InfoNCE
    cl_weight: float = 0.01  # lambda: our choice, not tuned by a recorded sweep (docs/relife.md)
    cl_temperature: float = 0.2  # tau

    def __post_init__(self) -> None:
        if self.contrastive not in CONTRASTIVE:
            raise InputError(f"contrastive must be one of {CONTRASTIVE}, got {self.contrastive!r}")
        if not (1 <= self.dim <= MAX_DIM and 1 <= self.heads <= self.dim and self.dim % self.heads == 0):
            raise InputError(f"dim ({self.dim}) must be a multiple of heads ({self.heads}) from 1 to {MAX_DIM}")
        if not (math.isfinite(self.cl_temperature) and 0 < self.cl_temperature <= 100):
            raise InputError(f"cl_temperature must be a number in (0, 100], got {self.cl_temperature}")
        if not (math.isfinite(self.cl_weight) and 0 <= self.cl_weight <= 100):
            raise InputError(f"cl_weight must be a number in [0, 100], got {self.cl_weight}")


# ---------------------------------------------------------------- shared layers

class ListEmbedding(nn.Module):
    """e(v) = E_item[v] + E_genre[g(v)] + w_s s(v), s the initial ranker's score (a dense feature every model gets)."""

    def __init__(self, n_items: int, n_cats: int, dim: int):
        super().__init__()
        self.item = nn.Embedding(n_items, dim, padding_idx=0)
        self.cat = nn.Embedding(n_cats, dim, padding_idx=0)
        self.score = nn.Linear(1, dim)

    def forward(self, items: torch.Tensor, cats: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.item(items) + self.cat(cats) + self.score(scores.unsqueeze(-1).float())

    def candidates(self, batch: dict) -> torch.Tensor:
        """(B, L, d)."""
        return self(batch["items"], batch["cats"], batch["scores"])

    def history(self, batch: dict) -> torch.Tensor:
        """(B, H, L, d)."""
        return self(batch["hist_items"], batch["hist_cats"], batch["hist_scores"])


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over valid keys; a query with no valid key returns 0.

    q (B, h, Q, dh), k/v (B, h, K, dh), key_mask (B, K) bool.
    """
    m = key_mask[:, None, None, :]
    empty = ~key_mask.any(-1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=m | empty[:, None, None, None])
    return out.masked_fill(empty[:, None, None, None], 0.0)


class Attention(nn.Module):
    """Multi-head attention with a key mask that tolerates queries with no valid key (empty history)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.kv, self.o = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        B, Q, d = query.shape
        split = lambda x: x.reshape(B, x.shape[1], self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        k, v = self.kv(keys).chunk(2, dim=-1)
        out = masked_attention(split(self.q(query)), split(k), split(v), key_mask)
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


def pointwise_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real candidates of t log sigma(s) + (1 - t) log(1 - sigma(s)) (note 2.3 step 6).

    With inverse-propensity targets t = c / p (which may exceed 1) this is the unbiased pointwise
    estimator of Saito et al. (WSDM'20): its expectation is the BCE against the intent r'.
    """
    t = target.to(logits.dtype)
    loss = t * F.softplus(-logits) + (1.0 - t) * F.softplus(logits)
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
    """Step 3: hybrid feedback tokens z_{k,l} = e(v_{k,l}) + f(y_{k,l}) + p_l + s_k, a transformer block
    inside each list (every feedback token in the context of its list-mates; s_k carries the time
    order), then r_j^mix = Attn(q = C^_j, K = V = Z') over all history tokens."""

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
        z = (hist + self.feedback((hist_labels > 0.5).long()) + self.position.weight[:L]
             + self.list_index.weight[:H, None, :])
        z = self.encoder(z.reshape(B * H, L, d), hist_mask.reshape(B * H, L)).reshape(B, H * L, d)
        return self.read(cand, z, hist_mask.reshape(B, H * L))


class ComparisonAwarePatternExtractor(nn.Module):
    """Step 4: within-list comparison features c_i = W_o sum_{l != i} softmax_l(phi(x_i, x_l)) relu(W (x_i - x_l) + b),
    list patterns g_k = Pool_i MLP([c_i; f(y_i)]) (history) and g_C = Pool_j MLP(c_j) (candidates,
    label-free), and the pattern context r_pat = Attn(q = g_C, K = V = {g_k})."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.phi_q, self.phi_k = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.diff = nn.Linear(dim, dim, bias=False)
        self.diff_bias = nn.Parameter(torch.zeros(dim))
        self.out = nn.Linear(dim, dim)
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
        wx = self.diff(x)
        pair = torch.relu(wx.unsqueeze(-2) - wx.unsqueeze(-3) + self.diff_bias)  # (..., n, n, d): relu(W (x_i - x_l) + b)
        return self.out((w.unsqueeze(-1) * pair).sum(-2))

    def history_patterns(self, hist: torch.Tensor, hist_labels: torch.Tensor, hist_mask: torch.Tensor) -> torch.Tensor:
        """g_k (B, H, d) for labelled lists (B, H, L, d)."""
        c = self.compare(hist, hist_mask)
        g = self.hist_pattern(torch.cat([c, self.feedback((hist_labels > 0.5).long())], -1))
        return masked_mean(g, hist_mask)

    def forward(self, cand: torch.Tensor, cand_mask: torch.Tensor, g_hist: torch.Tensor,
                list_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_j (B, L, d), g_C (B, d), r_pat (B, d))."""
        c = self.compare(cand, cand_mask)
        g_cand = masked_mean(self.cand_pattern(c), cand_mask)
        r_pat = self.read(g_cand.unsqueeze(1), g_hist, list_mask).squeeze(1)
        return c, g_cand, r_pat


class Relife(nn.Module):
    """The full model: `forward` gives logits (B, L) and, while training, lambda * L_cl (step 5)."""

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
        width = d * (2 + 2 * cfg.use_dim + cfg.use_spm + 3 * cfg.use_cpe)
        self.head = nn.Sequential(nn.Linear(width, 2 * d), nn.ReLU(), nn.Linear(2 * d, 1))

    def history_mask(self, batch: dict) -> torch.Tensor:
        """The history the model may read: all of it, none ("history off") or the clicked items only."""
        mask = batch["hist_mask"]
        if not self.config.use_history:
            return torch.zeros_like(mask)
        return mask if self.config.hybrid else mask & (batch["hist_labels"] > 0.5)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, mask = self.config, batch["mask"]
        e_c = self.embed.candidates(batch)  # (B, L, d)
        L = e_c.shape[1]
        x = e_c + self.position.weight[:L] if cfg.use_position else e_c
        c_hat = self.icc(x, mask) if self.icc is not None else x  # step 1: C^ = MHSA(E_C + P)
        hist, hist_mask, hist_labels = self.embed.history(batch), self.history_mask(batch), batch["hist_labels"]
        B, H, _, d = hist.shape
        parts = [c_hat, e_c]
        if self.miner is not None:
            parts += self.miner(c_hat, hist.reshape(B, H * L, d), hist_labels.reshape(B, H * L), hist_mask.reshape(B, H * L))
        if self.spm is not None:
            parts.append(self.spm(c_hat, hist, hist_labels, hist_mask))
        extra = e_c.new_zeros(())
        if self.cpe is not None:
            list_mask = hist_mask.any(-1)  # (B, H)
            g_hist = self.cpe.history_patterns(hist + self.position.weight[:L], hist_labels, hist_mask)
            c, g_cand, r_pat = self.cpe(x, mask, g_hist, list_mask)
            r_pat = r_pat.unsqueeze(1).expand(-1, L, -1)
            parts += [c, r_pat, c * r_pat]  # the user's pattern modulates each candidate's comparison
            if self.training and cfg.cl_weight > 0:
                extra = cfg.cl_weight * self.contrastive_loss(batch, x, g_cand, g_hist, list_mask)
        return self.head(torch.cat(parts, -1)).squeeze(-1), extra  # step 6

    def contrastive_loss(self, batch: dict, x: torch.Tensor, g_cand: torch.Tensor, g_hist: torch.Tensor,
                         list_mask: torch.Tensor) -> torch.Tensor:
        """Step 5: reading (a) aligns g_C with the same user's mean historical pattern against other users
        in the batch; reading (b) aligns the label-free g_C with the candidate list's labelled pattern."""
        cfg = self.config
        if cfg.contrastive == "user":
            return info_nce(g_cand, masked_mean(g_hist, list_mask), cfg.cl_temperature, list_mask.any(-1))
        labels = (batch["target"] > 0.5).float()
        g_lab = self.cpe.history_patterns(x.unsqueeze(1), labels.unsqueeze(1), batch["mask"].unsqueeze(1)).squeeze(1)
        return info_nce(g_cand, g_lab, cfg.cl_temperature, batch["mask"].any(-1))
