"""Generation-time HSR: a KV cache that keeps one half-space index per (layer, batch row, kv-head), and
a drop-in ReLU^alpha attention for Hugging Face LLaMA-class models (registered as an attention
implementation, so decoding runs through `model.generate` unchanged).

Caches live on each attention module of the model they were switched on (never shared between
models) and belong to one sequence: a forward pass whose query length equals its key length (no past
keys: a new prompt) starts new caches, and so does any pass whose past keys are not the ones cached
(a different length, or a different last key), so `generate` may be called any number of times with
prompts of any lengths in any order. Padded batches work through the attention mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.hsr.attention import relu_weights
from tenfold.hsr.index import HalfSpaceIndex

DENSE, HSR = "relu_dense", "hsr_relu"
# transformers model types whose attention applies RoPE to q and k and then calls the pluggable
# attention interface with (batch, heads, seq, head_dim) tensors; tested on llama
FAMILIES = ("llama", "mistral", "qwen2", "qwen3")


class HSRKVCache:
    """Keys/values of one attention head as generation proceeds; `append` then `attend`."""

    def __init__(self, d: int, alpha: int = 1, bias: float = 0.0, scale: float | None = None, leaf_size: int = 64):
        self.alpha, self.bias = alpha, bias
        self.scale = 1.0 / math.sqrt(d) if scale is None else scale
        self.index = HalfSpaceIndex(torch.zeros(0, d), leaf_size=leaf_size)
        self._values: torch.Tensor | None = None
        self.last_key: torch.Tensor | None = None
        self.scored: list[int] = []  # per attend call: keys whose dot product was computed
        self.reported: list[int] = []  # per attend call: keys with a nonzero weight

    def __len__(self) -> int:
        return len(self.index)

    @property
    def values(self) -> torch.Tensor:
        return self._values[: len(self)]

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Add (t, d) keys and (t, d_v) values (cast to float32 when half precision)."""
        if len(keys) == 0:
            return
        start = len(self)
        self.index.append(keys.float() if keys.dtype in (torch.float16, torch.bfloat16) else keys)
        values = values.to(self.index.dtype)
        if self._values is None or len(self) > len(self._values):  # grow geometrically: appends stay O(1)
            grown = values.new_zeros((max(2 * len(self), 16), values.shape[1]))
            if self._values is not None:
                grown[:start] = self._values[:start]
            self._values = grown
        self._values[start:len(self)] = values
        self.last_key = keys[-1].to(self.index.dtype).clone()

    def attend(self, q: torch.Tensor, upto: int | None = None, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """ReLU^alpha attention of q (d,) over the cached keys [0, upto) that `allowed` (n,) permits."""
        ids, s = self.index.report(self.scale * q.to(self.index.dtype), self.bias)
        self.scored.append(self.index.last_stats.scored)
        if upto is not None:
            keep = ids < upto
            ids, s = ids[keep], s[keep]
        if allowed is not None:
            keep = allowed[ids]
            ids, s = ids[keep], s[keep]
        self.reported.append(len(ids))
        if len(ids) == 0:
            return torch.zeros(self._values.shape[1], dtype=self._values.dtype)
        w = relu_weights(s, self.bias, self.alpha)
        return (w @ self._values[ids]) / w.sum()


@dataclass
class ReluAttentionState:
    """What a switched attention module keeps: the ReLU settings and its per-(batch row, kv-head) caches."""

    alpha: int = 1
    bias: float = 0.0
    leaf_size: int = 64
    caches: list[list[HSRKVCache]] = field(default_factory=list)  # [batch row][kv head]

    def sync(self, key: torch.Tensor, value: torch.Tensor, qlen: int, scaling: float) -> None:
        """Make the caches hold exactly `key`/`value` (batch, kv_heads, n, d): append the new positions
        when the past ones are the cached ones, else start the row's caches over."""
        b, kvh, n, d = key.shape
        past = n - qlen
        if qlen == n or len(self.caches) != b or any(len(row) != kvh for row in self.caches):
            self.caches = [[None] * kvh for _ in range(b)]  # a new sequence (or batch): new caches
        for bi in range(b):
            for kh in range(kvh):
                cache = self.caches[bi][kh]
                if cache is None or len(cache) != past or (past and not torch.equal(cache.last_key,
                                                                                     key[bi, kh, past - 1].float())):
                    cache = self.caches[bi][kh] = HSRKVCache(d, self.alpha, self.bias, scaling, self.leaf_size)
                    cache.append(key[bi, kh].float(), value[bi, kh].float())
                else:  # only the new positions are read: a decoding step stays sublinear in n
                    cache.append(key[bi, kh, past:].float(), value[bi, kh, past:].float())

    def counts(self) -> dict:
        scored = sum(sum(c.scored) for row in self.caches for c in row)
        reported = sum(sum(c.reported) for row in self.caches for c in row)
        calls = sum(len(c.scored) for row in self.caches for c in row)
        return {"scored": scored, "reported": reported, "attend_calls": calls}


def _state(module) -> ReluAttentionState:
    state = getattr(module, "_tenfold_relu", None)
    if state is None:
        raise UnsupportedError(f"{type(module).__name__} was not switched to ReLU attention: call "
                               "tenfold.hsr.use_relu_attention(model, ...) on its model first")
    return state


def _allowed(attention_mask, b: int, qlen: int, n: int) -> torch.Tensor | None:
    """(batch, qlen, n) bool: which keys each query may attend to; None means causal by position."""
    if attention_mask is None:
        return None
    mask = attention_mask[:, 0, -qlen:, -n:] if attention_mask.dim() == 4 else attention_mask
    if mask.dtype != torch.bool:  # an additive float mask: 0 where allowed, very negative elsewhere
        mask = mask > torch.finfo(mask.dtype).min / 2
    return mask.expand(b, qlen, n)


def _relu_dense_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Causal ReLU^alpha attention, dense: the reference the HSR path must match."""
    state = _state(module)
    b, h, qlen, _ = query.shape
    n = key.shape[2]
    groups = h // key.shape[1]
    k = key.repeat_interleave(groups, dim=1).float()
    v = value.repeat_interleave(groups, dim=1).float()
    s = scaling * (query.float() @ k.transpose(2, 3))  # (b, h, q, n)
    allowed = _allowed(attention_mask, b, qlen, n)
    if allowed is None:
        allowed = (torch.arange(n)[None, :] <= (torch.arange(qlen)[:, None] + n - qlen)).expand(b, qlen, n)
    w = relu_weights(s, state.bias, state.alpha) * allowed[:, None]
    total = w.sum(-1, keepdim=True)
    out = torch.where(total > 0, (w @ v) / total.clamp_min(1e-30), torch.zeros(()))
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


def _hsr_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Causal ReLU^alpha attention through per-head HSR caches that follow the model's KV cache."""
    state = _state(module)
    b, h, qlen, _ = query.shape
    kvh, n = key.shape[1], key.shape[2]
    groups = h // kvh
    state.sync(key, value, qlen, scaling)
    allowed = _allowed(attention_mask, b, qlen, n)
    out = torch.zeros(b, h, qlen, value.shape[-1])
    for bi in range(b):
        for kh in range(kvh):
            cache = state.caches[bi][kh]
            for g in range(groups):
                head = kh * groups + g
                for t in range(qlen):
                    ok = None if allowed is None else allowed[bi, t]
                    out[bi, head, t] = cache.attend(query[bi, head, t].float(), upto=n - qlen + t + 1, allowed=ok)
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


def check_family(model) -> None:
    """UnsupportedError unless `model` is a transformers model of a LLaMA-class family."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if config is None or not hasattr(config, "_attn_implementation") or model_type not in FAMILIES:
        raise UnsupportedError(f"{type(model).__name__} (model_type {model_type!r}) is not a LLaMA-class transformers "
                               f"model: supported families are {', '.join(FAMILIES)} (post-RoPE q/k through the "
                               "pluggable attention interface)")


def attention_modules(model) -> list:
    """The model's self-attention modules (they carry `layer_idx` and the q/k/v projections)."""
    return [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "k_proj") and hasattr(m, "q_proj")]


def use_relu_attention(model, mode: str = HSR, alpha: int = 1, bias: float = 0.0, leaf_size: int = 64):
    """Switch a HF LLaMA-class model to ReLU^alpha attention, dense (`relu_dense`) or via HSR (`hsr_relu`).

    Each attention module gets its own settings and caches (switching again resets them).
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if mode not in (DENSE, HSR):
        raise InputError(f"mode must be {DENSE!r} or {HSR!r}, got {mode!r}")
    if alpha < 1 or alpha != int(alpha):
        raise InputError(f"alpha must be a positive integer, got {alpha}")
    check_family(model)
    AttentionInterface.register(DENSE, _relu_dense_attention)
    AttentionInterface.register(HSR, _hsr_attention)
    for name in (DENSE, HSR):  # boolean (batch, 1, q, n) masks, or None for plain causal attention
        AttentionMaskInterface.register(name, sdpa_mask)
    for m in attention_modules(model):
        m._tenfold_relu = ReluAttentionState(int(alpha), float(bias), leaf_size)
    model.config._attn_implementation = mode
    for m in model.modules():  # some versions copy the config per layer
        if hasattr(m, "config") and m.config is not model.config and hasattr(m.config, "_attn_implementation"):
            m.config._attn_implementation = mode
    return model


def work_counts(model) -> dict:
    """Keys scored and reported by the model's HSR caches for the current sequence, over all heads."""
    totals = {"scored": 0, "reported": 0, "attend_calls": 0}
    for m in attention_modules(model):
        state = getattr(m, "_tenfold_relu", None)
        if state is not None:
            for k, v in state.counts().items():
                totals[k] += v
    return totals
