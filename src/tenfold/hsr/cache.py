"""Generation-time HSR: a KV cache that keeps one half-space index per (layer, kv-head), and a
drop-in ReLU^alpha attention for Hugging Face LLaMA-class models (registered as an attention
implementation, so decoding runs through `model.generate` unchanged)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.hsr.attention import relu_weights
from tenfold.hsr.index import HalfSpaceIndex

DENSE, HSR = "relu_dense", "hsr_relu"


class HSRKVCache:
    """Keys/values of one attention head as generation proceeds; `append` then `attend`."""

    def __init__(self, d: int, alpha: int = 1, bias: float = 0.0, scale: float | None = None, leaf_size: int = 64):
        self.alpha, self.bias = alpha, bias
        self.scale = 1.0 / math.sqrt(d) if scale is None else scale
        self.index = HalfSpaceIndex(torch.zeros(0, d), leaf_size=leaf_size)
        self.values: torch.Tensor | None = None
        self.touched: list[int] = []

    def __len__(self) -> int:
        return len(self.index)

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Add (t, d) keys and (t, d_v) values (float32/64)."""
        self.index.append(keys.float() if keys.dtype in (torch.float16, torch.bfloat16) else keys)
        values = values.to(self.index.dtype)
        self.values = values if self.values is None else torch.cat([self.values, values])

    def attend(self, q: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """ReLU^alpha attention of q (d,) over the cached keys [0, upto) (causal prefill uses `upto`)."""
        ids = self.index.query(self.scale * q.to(self.index.dtype), self.bias)
        if upto is not None:
            ids = ids[ids < upto]
        self.touched.append(len(ids))
        if len(ids) == 0:
            return torch.zeros(self.values.shape[1], dtype=self.values.dtype)
        keys = self.index.keys_at(ids)
        w = relu_weights(self.scale * (keys @ q.to(keys.dtype)), self.bias, self.alpha)
        return (w @ self.values[ids]) / w.sum()


@dataclass
class HSRSettings:
    alpha: int = 1
    bias: float = 0.0
    caches: dict = field(default_factory=dict)  # (id(module), batch, kv_head) -> HSRKVCache


_SETTINGS = HSRSettings()


def _relu_dense_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Causal ReLU^alpha attention, dense: the reference the HSR path must match."""
    groups = query.shape[1] // key.shape[1]
    k = key.repeat_interleave(groups, dim=1)
    v = value.repeat_interleave(groups, dim=1)
    s = scaling * (query.float() @ k.float().transpose(2, 3))  # (b, h, q, n)
    qlen, n = s.shape[-2:]
    causal = torch.arange(n)[None, :] <= (torch.arange(qlen)[:, None] + n - qlen)
    w = relu_weights(s, _SETTINGS.bias, _SETTINGS.alpha) * causal
    total = w.sum(-1, keepdim=True)
    out = torch.where(total > 0, (w @ v.float()) / total.clamp_min(1e-30), torch.zeros(()))
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


def _hsr_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Causal ReLU^alpha attention through per-head HSR caches that grow with the KV cache."""
    b, h, qlen, d = query.shape
    groups = h // key.shape[1]
    n = key.shape[2]
    out = torch.zeros(b, h, qlen, value.shape[-1])
    for bi in range(b):
        for kh in range(key.shape[1]):
            cache_key = (id(module), bi, kh)
            cache = _SETTINGS.caches.get(cache_key)
            if cache is None or len(cache) > n:  # a new sequence: start over
                cache = _SETTINGS.caches[cache_key] = HSRKVCache(d, _SETTINGS.alpha, _SETTINGS.bias, scaling)
            if len(cache) < n:
                cache.append(key[bi, kh, len(cache):].float(), value[bi, kh, len(cache):].float())
            for g in range(groups):
                for t in range(qlen):
                    out[bi, kh * groups + g, t] = cache.attend(query[bi, kh * groups + g, t].float(), upto=n - qlen + t + 1)
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


def use_relu_attention(model, mode: str = HSR, alpha: int = 1, bias: float = 0.0):
    """Switch a HF LLaMA-class model to ReLU^alpha attention, dense (`relu_dense`) or via HSR (`hsr_relu`).

    Batch decoding without padding only (the causal mask is rebuilt from positions).
    """
    from transformers import AttentionInterface

    if mode not in (DENSE, HSR):
        raise InputError(f"mode must be {DENSE!r} or {HSR!r}, got {mode!r}")
    if alpha < 1 or alpha != int(alpha):
        raise InputError(f"alpha must be a positive integer, got {alpha}")
    if not hasattr(model, "config") or not hasattr(model.config, "_attn_implementation"):
        raise UnsupportedError(f"{type(model).__name__} is not a transformers model with pluggable attention")
    AttentionInterface.register(DENSE, _relu_dense_attention)
    AttentionInterface.register(HSR, _hsr_attention)
    _SETTINGS.alpha, _SETTINGS.bias = int(alpha), float(bias)
    _SETTINGS.caches.clear()
    model.config._attn_implementation = mode
    for m in model.modules():  # some versions copy the config per layer
        if hasattr(m, "config") and m.config is not model.config and hasattr(m.config, "_attn_implementation"):
            m.config._attn_implementation = mode
    return model


def touched_fraction() -> float:
    """Mean fraction of cached keys the HSR caches reported per query since the last switch."""
    num = den = 0
    for c in _SETTINGS.caches.values():
        for i, t in enumerate(c.touched):
            num += t
            den += min(len(c), i + 1) or 1
    return num / max(1, den)
