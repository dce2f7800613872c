"""ReLU^alpha and top-r softmax attention through a half-space reporting index (Chen et al. 2024).

ReLU attention (paper Def. "ReLU attention", Sec. 3): for a query q and keys k_i,
    w_i = ReLU(scale * <q, k_i> - b)^alpha,   out = sum_i w_i v_i / sum_i w_i,
so only keys with <scale * q, k_i> > b contribute: one half-space query finds them all (Sec. 4, ReLU
generation decoding) and the output equals the dense one to float round-off.

Softmax attention (Sec. 4, softmax generation decoding): the index reports the "massively
activated" keys (score above a threshold, or the top r); softmax is taken over them only and the
error is bounded without touching the rest (App. G): if every unreported score is <= t, the unreported
softmax mass tau satisfies tau <= (n - r) e^t / (S_R + (n - r) e^t) with S_R the reported mass, and
|out - out_R|_inf <= 2 tau max|V| (out - out_R = tau (mean_tail - mean_head)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from tenfold.core.errors import InputError
from tenfold.hsr.index import HalfSpaceIndex


def _validate(q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, alpha: float | None = None,
              scan_keys: bool = True) -> None:
    """Shapes, dtypes and finiteness; `scan_keys=False` skips the O(n d) scan of K and V (a prebuilt
    index already checked its keys), so a decoding step stays sublinear."""
    if K.dim() != 2 or K.shape[0] == 0:
        raise InputError(f"keys must be a non-empty (n, d) tensor, got shape {tuple(K.shape)}")
    if V.dim() != 2 or V.shape[0] != K.shape[0]:
        raise InputError(f"values must be (n, d_v) with n = {K.shape[0]} keys, got {tuple(V.shape)}")
    if q.shape[-1] != K.shape[1] or q.dim() not in (1, 2):
        raise InputError(f"query dimension {q.shape[-1]} (shape {tuple(q.shape)}) does not match key dimension {K.shape[1]}")
    for name, t in (("query", q), ("keys", K), ("values", V)):
        if t.dtype in (torch.float16, torch.bfloat16):
            raise InputError(f"{name} are {t.dtype}: HSR bounds need float32 or float64; cast with .float() "
                             "(the output can be cast back)")
        if (scan_keys or name == "query") and not torch.isfinite(t).all():
            raise InputError(f"{name} contain NaN or inf")
    if alpha is not None and (alpha < 1 or alpha != int(alpha)):
        raise InputError(f"alpha must be a positive integer (ReLU^alpha, alpha in N_+), got {alpha}")


def relu_weights(scores: torch.Tensor, bias: float, alpha: int) -> torch.Tensor:
    """ReLU(s - b)^alpha."""
    return torch.relu(scores - bias) ** int(alpha)


@dataclass
class AttentionStats:
    """What a call computed, per query: keys scored (dot products with keys), keys reported (nonzero
    weights) and index bounds evaluated; and whether it fell back to the dense path."""

    n: int
    scored: list[int] = field(default_factory=list)
    reported: list[int] = field(default_factory=list)
    bounds: list[int] = field(default_factory=list)
    dense_fallback: bool = False

    @property
    def scored_fraction(self) -> float:
        return sum(self.scored) / max(1, self.n * len(self.scored))

    @property
    def reported_fraction(self) -> float:
        return sum(self.reported) / max(1, self.n * len(self.reported))


def relu_attention(q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, alpha: int = 1, bias: float = 0.0,
                   index=None, scale: float | None = None, dense_fraction: float = 0.5,
                   return_stats: bool = False):
    """ReLU^alpha attention out = sum_i w_i v_i / sum_i w_i, w_i = ReLU(scale <q, k_i> - bias)^alpha.

    q: (d,) or (m, d). `index`: None for the dense computation, True to build a HalfSpaceIndex over K,
    or a prebuilt index over K (a `HalfSpaceIndex`, `LowRankBlockIndex` or anything with
    `report(q, b) -> (ids, scores)` and `last_stats`); with it only the keys it scores are touched and
    each is dotted once. When more than `dense_fraction` of the keys qualify (a bias so low that most
    keys do), it falls back to dense and says so in the stats. A query with no qualifying key outputs
    zeros (0/0 is defined as 0 here).
    """
    prebuilt = index is not None and index is not False and index is not True
    _validate(q, K, V, alpha, scan_keys=not prebuilt)
    scale = 1.0 / math.sqrt(K.shape[1]) if scale is None else scale
    Q = q.unsqueeze(0) if q.dim() == 1 else q
    n = K.shape[0]
    stats = AttentionStats(n)
    if index is None or index is False:
        out = _relu_dense(Q, K, V, alpha, bias, scale)
        stats.scored = [n] * len(Q)
        stats.reported = [int(c) for c in ((scale * (Q @ K.T)) > bias).sum(1)]
        stats.bounds = [0] * len(Q)
    else:
        if index is True:
            index = HalfSpaceIndex(K)
        if len(index) != n:
            raise InputError(f"the index holds {len(index)} keys but K has {n}: rebuild or append to it")
        out = torch.zeros(len(Q), V.shape[1], dtype=V.dtype, device=V.device)
        for i, qi in enumerate(Q):
            ids, s = index.report(scale * qi, bias)  # half-space {k : <scale q, k> > b}, with its scores
            st = index.last_stats
            stats.reported.append(len(ids))
            stats.bounds.append(st.bounds)
            if len(ids) > dense_fraction * n:
                stats.dense_fallback = True
                stats.scored.append(st.scored + n)
                out[i] = _relu_dense(qi[None], K, V, alpha, bias, scale)[0]
                continue
            stats.scored.append(st.scored)
            if len(ids):
                w = relu_weights(s, bias, alpha)
                out[i] = (w.to(V.dtype) @ V[ids]) / w.sum()
    out = out[0] if q.dim() == 1 else out
    return (out, stats) if return_stats else out


def _relu_dense(Q, K, V, alpha, bias, scale):
    w = relu_weights(scale * (Q @ K.T), bias, alpha)  # (m, n)
    total = w.sum(1, keepdim=True)
    return torch.where(total > 0, (w @ V) / total.clamp_min(torch.finfo(w.dtype).tiny), torch.zeros((), dtype=V.dtype))


@dataclass
class TopRResult:
    out: torch.Tensor  # (d_v,) or (m, d_v)
    bound: torch.Tensor  # bound on |out - dense|_inf per query (App. G style, computed from reported keys only)
    tail_mass_bound: torch.Tensor  # bound on the unreported softmax mass per query
    reported: list[int]


def softmax_attention_topr(q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, r: int | None = None,
                           threshold: float | None = None, index: HalfSpaceIndex | bool | None = None,
                           scale: float | None = None) -> TopRResult:
    """Softmax over the reported "massively activated" keys only, with the error bound beside it.

    Give `threshold` (report keys with scale <q, k> > threshold through the index) or `r` (the r largest
    scores; with an index the threshold is lowered until at least r keys are reported).
    """
    _validate(q, K, V, scan_keys=not isinstance(index, HalfSpaceIndex))
    if (r is None) == (threshold is None):
        raise InputError("give exactly one of r or threshold")
    if r is not None and not (1 <= r <= K.shape[0]):
        raise InputError(f"r must be in [1, {K.shape[0]}], got {r}")
    scale = 1.0 / math.sqrt(K.shape[1]) if scale is None else scale
    Q = q.unsqueeze(0) if q.dim() == 1 else q
    if index is True:
        index = HalfSpaceIndex(K)
    n, vmax = K.shape[0], V.abs().max()
    outs, bounds, taus, reported = [], [], [], []
    for qi in Q:
        ids, t = _report(qi, K, r, threshold, index, scale)
        s = scale * (K[ids] @ qi)
        m = s.max()
        p = torch.exp(s - m)
        outs.append((p @ V[ids]) / p.sum())
        rest = n - len(ids)
        tail = rest * torch.exp(torch.as_tensor(t, dtype=s.dtype) - m) if rest else torch.zeros((), dtype=s.dtype)
        tau = tail / (p.sum() + tail)
        taus.append(tau)
        bounds.append(2 * tau * vmax)
        reported.append(len(ids))
    out = torch.stack(outs)
    return TopRResult(out[0] if q.dim() == 1 else out, torch.stack(bounds), torch.stack(taus), reported)


def _report(qi, K, r, threshold, index, scale) -> tuple[torch.Tensor, float]:
    """(ids of the reported keys, t) with every unreported score <= t."""
    if threshold is not None:
        ids = index.query(scale * qi, threshold) if index is not None else torch.nonzero(scale * (K @ qi) > threshold).flatten()
        if len(ids) == 0:  # nothing above the threshold: fall back to the single best key (a scan)
            ids = (K @ qi).argmax().view(1)
        return ids, float(threshold)
    if index is None:  # top-r by a full scan
        s = scale * (K @ qi)
        top = s.topk(r)
        rest = s.topk(r + 1).values[-1] if r < len(s) else top.values[-1]
        return top.indices, float(rest)
    # with an index: a threshold from the scores of a strided sample of keys, lowered until >= r qualify
    sample = scale * (K[:: max(1, len(K) // 1024)] @ qi)
    frac = min(1.0, 1.5 * r / len(K))
    while True:
        t = float(torch.quantile(sample, 1.0 - frac)) if frac < 1.0 else float(sample.min()) - 1.0
        ids = index.query(scale * qi, t)
        if len(ids) >= r or frac >= 1.0:
            break
        frac = min(1.0, 2 * frac)
    if len(ids) > r:  # keep the r largest; the (r+1)-th reported score bounds everything left out
        s = scale * (K[ids] @ qi)
        top = s.topk(r + 1)
        return ids[top.indices[:r]], float(top.values[r])
    if len(ids) < r:  # fewer keys than r above the lowest threshold: every key is reported
        return torch.arange(len(K)), t
    return ids, t
