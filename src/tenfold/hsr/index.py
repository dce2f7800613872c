"""Half-space reporting over a growing key set (Chen et al. 2024, Sec. 3 "HSR data structure").

The paper uses the theoretical HSR structure of Agarwal et al. (query O(n^{1-1/floor(d/2)} + k));
here is a practical, exact substitute: a static kd-style tree in the keys' principal-axis basis
(median splits on the widest rotated coordinate, leaves of `leaf_size` keys) whose nodes keep their
bounding boxes, queried top-down, all nodes of a level at once. A node is
  * pruned when max_{k in box} <q, k> <= b - margin (no key of it can qualify),
  * reported whole when min_{k in box} <q, k> > b + margin (every key qualifies),
  * opened otherwise; at the leaves the keys' <q, k> are computed and compared with b.
Reported keys come back with their scores <q, k>, so attention never computes a dot product twice.

Exactness, including round-off (`roundoff_margin`): boxes and bounds are computed in float64 on
rotated coordinates, and the margin covers (i) the error of any float evaluation of <q, k> in the
keys' precision (Higham Thm 3.1: |fl(<q,k>) - <q,k>| <= gamma_d sum|q_i k_i| <= gamma_d ||q||_1 ||k||_inf),
(ii) the orthogonality defect of the float64 basis and (iii) float64 rounding of the bound itself.
So a pruned key's score is <= b and a wholly reported key's score is > b in every summation order.

Appends use the logarithmic method (Bentley & Saxe 1980): new keys wait in a small buffer that is
scanned directly; a full buffer becomes a tree, and trees of equal size merge, so each key is rebuilt
O(log n) times (amortised O(log^2 n) per append) and a query visits O(log n) trees.

Work of a query (`QueryStats`): keys scored (dot products with keys: opened leaves, whole subtrees,
the buffer) and box bounds evaluated (two d-dim dot products each). How many depends on how well
boxes separate keys from the half-space: low intrinsic dimension helps, as for any space-partitioning
tree; isotropic keys in high dimension make it open nearly every leaf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from tenfold.core.errors import InputError

U64 = 2.0**-53  # unit roundoff of float64


def gamma(n: int, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u): the relative error bound of an n-term float dot product."""
    return n * u / (1.0 - n * u)


def roundoff_margin(q64: torch.Tensor, b: float, key_dtype: torch.dtype, k_inf: float, k_2: float,
                    defect: float = 0.0) -> float:
    """A bound on how far a float64 box bound (rotated basis, `defect` = ||B^T B - I||_F) and a float
    score in `key_dtype` can be from the exact <q, k>, for keys with max |k_i| <= k_inf, ||k|| <= k_2.

    Doubled, so that the (tiny) error of evaluating the margin itself is covered.
    """
    d = q64.shape[0]
    u = torch.finfo(key_dtype).eps / 2
    q1, q2 = float(q64.abs().sum()), float(q64.norm())
    score = gamma(d, u) * q1 * k_inf  # (i) the score's own round-off
    basis = q2 * k_2 * (defect + 4 * gamma(d + 2, U64) * math.sqrt(d))  # (ii) + rotating q and k in float64
    bound = gamma(d + 2, U64) * (math.sqrt(d) * q2 * k_2 + abs(b))  # (iii) summing the box bound
    return 2.0 * (score + basis + bound)


def principal_basis(keys: torch.Tensor, centred: bool = True) -> tuple[torch.Tensor, float]:
    """(B, defect): float64 eigenvectors of the keys' (centred or raw) second moment, largest first,
    and ||B^T B - I||_F, the orthogonality defect the round-off margin must cover."""
    d = keys.shape[1]
    if keys.shape[0] < 2:
        return torch.eye(d, dtype=torch.float64, device=keys.device), 0.0
    sample = keys[:: max(1, keys.shape[0] // 4096)].double()  # principal axes from a sample
    if centred:
        sample = sample - sample.mean(0)
    basis = torch.linalg.eigh(sample.T @ sample)[1].flip(1)
    eye = torch.eye(d, dtype=torch.float64, device=keys.device)
    return basis, float((basis.T @ basis - eye).norm())


@dataclass
class QueryStats:
    """The work of one query: keys scored (dot products with keys) and box bounds evaluated."""

    scored: int = 0
    reported: int = 0
    bounds: int = 0  # box bounds (each costs two d-dimensional dot products)

    def add(self, other: QueryStats) -> None:
        self.scored += other.scored
        self.reported += other.reported
        self.bounds += other.bounds


@dataclass
class _Tree:
    """A static tree over `keys`: level l has 2^l nodes, node j of the last level is a leaf."""

    keys: torch.Tensor  # (n_pad, d) in leaf order, padding rows copy a real key
    basis: torch.Tensor  # (d, d) float64 orthonormal principal axes: boxes live in rotated coordinates
    defect: float  # ||B^T B - I||_F
    ids: torch.Tensor  # (n_pad,) global ids, -1 for padding
    lo: list[torch.Tensor]  # per level: (2^l, d) float64 box minima
    hi: list[torch.Tensor]  # per level: (2^l, d) float64 box maxima
    leaf_size: int
    k_inf: float  # max |k_i|
    k_2: float  # max ||k||
    size: int = field(default=0)


def _build_tree(keys: torch.Tensor, ids: torch.Tensor, leaf_size: int) -> _Tree:
    n, d = keys.shape
    basis, defect = principal_basis(keys)
    levels = max(0, (max(n, 1) - 1).bit_length() - (leaf_size - 1).bit_length())  # 2^levels leaves of <= leaf_size
    leaf_size = -(-max(n, 1) // (1 << levels))  # as even as possible: fewer than 2^levels padding rows
    n_pad = leaf_size << levels
    pad = n_pad - n
    keys = torch.cat([keys, keys[:1].expand(pad, d)]) if pad else keys
    ids = torch.cat([ids, ids.new_full((pad,), -1)]) if pad else ids
    rot = keys.double() @ basis
    for level in range(levels):  # median split of every node of this level at once
        nodes = rot.view(1 << level, -1, d)
        widest = (nodes.amax(1) - nodes.amin(1)).argmax(1)  # (nodes,)
        coord = nodes.gather(2, widest.view(-1, 1, 1).expand(-1, nodes.shape[1], 1)).squeeze(2)
        order = coord.argsort(dim=1, stable=True)
        rot = nodes.gather(1, order.unsqueeze(2).expand(-1, -1, d)).reshape(n_pad, d)
        keys = keys.view(1 << level, -1, d).gather(1, order.unsqueeze(2).expand(-1, -1, d)).reshape(n_pad, d)
        ids = ids.view(1 << level, -1).gather(1, order).reshape(n_pad)
    lo, hi = [], []
    for level in range(levels + 1):
        nodes = rot.view(1 << level, -1, d)
        lo.append(nodes.amin(1))
        hi.append(nodes.amax(1))
    return _Tree(keys.contiguous(), basis, defect, ids, lo, hi, leaf_size, float(keys.abs().max()),
                 float(keys.double().norm(dim=1).max()), n)


class HalfSpaceIndex:
    """Exact half-space reporting: `query(q, b)` returns the ids of every key k with <q, k> > b.

    keys: (n, d) float tensor (float32 or float64; float16/bfloat16 are refused: cast first).
    `last_stats` holds the work of the last query.
    """

    def __init__(self, keys: torch.Tensor, leaf_size: int = 64, buffer_size: int = 256):
        if leaf_size < 1 or buffer_size < 1:
            raise InputError(f"leaf_size and buffer_size must be positive, got {leaf_size}, {buffer_size}")
        keys = check_keys(keys)
        self.d = keys.shape[1]
        self.dtype, self.device = keys.dtype, keys.device
        self.leaf_size, self.buffer_size = leaf_size, buffer_size
        self.trees: list[_Tree] = []
        self._buffer = keys.new_zeros((0, self.d))
        self._n = 0
        self.last_stats = QueryStats()
        if len(keys):
            self.trees.append(_build_tree(keys, torch.arange(len(keys), device=keys.device), leaf_size))
            self._n = len(keys)

    def __len__(self) -> int:
        return self._n

    bound_cost = 2.0  # a node's box bound: two d-dimensional dot products (upper and lower)

    @property
    def keys(self) -> torch.Tensor:
        """All keys in id order (n, d)."""
        out = self._buffer.new_empty((self._n, self.d))
        for t in self.trees:
            real = t.ids >= 0
            out[t.ids[real]] = t.keys[real]
        out[self._n - len(self._buffer):] = self._buffer
        return out

    def append(self, keys: torch.Tensor) -> torch.Tensor:
        """Add keys (m, d) or (d,); return their ids (n, ..., n + m - 1)."""
        keys = check_keys(keys.unsqueeze(0) if keys.dim() == 1 else keys, self.d, allow_empty=True).to(self.dtype)
        new_ids = torch.arange(self._n, self._n + len(keys), device=self.device)
        self._buffer = torch.cat([self._buffer, keys])
        self._n += len(keys)
        if len(self._buffer) >= self.buffer_size:
            self._flush()
        return new_ids

    def _flush(self) -> None:
        """Turn the buffer into a tree and merge trees of similar size (logarithmic method)."""
        keys = self._buffer
        ids = torch.arange(self._n - len(keys), self._n, device=self.device)
        self._buffer = keys.new_zeros((0, self.d))
        while self.trees and self.trees[-1].size <= len(keys):
            t = self.trees.pop()
            real = t.ids >= 0
            keys, ids = torch.cat([t.keys[real], keys]), torch.cat([t.ids[real], ids])
        self.trees.append(_build_tree(keys, ids, self.leaf_size))

    def report(self, q: torch.Tensor, b: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, scores) of every key with <q, k> > b, unsorted; scores are the computed <q, k>."""
        q = check_query(q, self.d).to(self.dtype)
        stats = QueryStats()
        ids, scores = [], []
        for t in self.trees:
            i, s = _query_tree(t, q, float(b), stats)
            ids.append(i)
            scores.append(s)
        if len(self._buffer):
            s = self._buffer @ q
            keep = s > b
            ids.append(torch.nonzero(keep).flatten() + (self._n - len(self._buffer)))
            scores.append(s[keep])
            stats.scored += len(self._buffer)
        ids_t = torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long, device=self.device)
        scores_t = torch.cat(scores) if scores else q.new_zeros(0)
        stats.reported = len(ids_t)
        self.last_stats = stats
        return ids_t, scores_t

    def query(self, q: torch.Tensor, b: float) -> torch.Tensor:
        """Sorted ids (LongTensor) of every key with <q, k> > b; q of shape (d,)."""
        return self.report(q, b)[0].sort().values

    def query_many(self, Q: torch.Tensor, b: float) -> list[torch.Tensor]:
        """`query` for each row of Q (m, d): the full-attention (prefill) mode."""
        return [self.query(q, b) for q in Q]


def _query_tree(t: _Tree, q: torch.Tensor, b: float, stats: QueryStats) -> tuple[torch.Tensor, torch.Tensor]:
    q64 = q.double()
    margin = roundoff_margin(q64, b, t.keys.dtype, t.k_inf, t.k_2, t.defect)
    qr = q64 @ t.basis  # <q, k> = <B^T q, B^T k>
    qp, qn = qr.clamp(min=0), qr.clamp(max=0)
    d = t.keys.shape[1]
    active = torch.zeros(1, dtype=torch.long, device=q.device)
    ids, scores = [], []
    levels = len(t.lo) - 1
    for level in range(levels + 1):
        lo, hi = t.lo[level][active], t.hi[level][active]
        stats.bounds += len(active)
        upper = hi @ qp + lo @ qn  # max over the box of <q, k>
        keep = upper > b - margin
        active = active[keep]
        if level < levels:
            lower = lo[keep] @ qp + hi[keep] @ qn  # min over the box
            inside = lower > b + margin
            if inside.any():  # whole subtrees inside the half-space: every key qualifies, score them once
                nodes = active[inside]
                ids.append(t.ids.view(1 << level, -1)[nodes].flatten())
                scores.append((t.keys.view(1 << level, -1, d)[nodes] @ q).flatten())
                stats.scored += int(ids[-1].numel())
            active = torch.stack([2 * active[~inside], 2 * active[~inside] + 1], 1).flatten()
        if len(active) == 0:
            break
    if len(active):
        leaf_ids = t.ids.view(-1, t.leaf_size)[active].flatten()
        s = (t.keys.view(-1, t.leaf_size, d)[active] @ q).flatten()
        stats.scored += int(leaf_ids.numel())
        keep = s > b
        ids.append(leaf_ids[keep])
        scores.append(s[keep])
    if not ids:
        return torch.zeros(0, dtype=torch.long, device=q.device), q.new_zeros(0)
    ids_t, scores_t = torch.cat(ids), torch.cat(scores)
    real = ids_t >= 0  # padding rows copy a real key; drop them (they were scored, as the tree stores them)
    return ids_t[real], scores_t[real]


def check_keys(keys: torch.Tensor, d: int | None = None, allow_empty: bool = False) -> torch.Tensor:
    """Validate a (n, d) key tensor at the boundary: float32/64, finite, the right dimension."""
    if not isinstance(keys, torch.Tensor) or keys.dim() != 2:
        raise InputError(f"keys must be a (n, d) tensor, got {getattr(keys, 'shape', type(keys))}")
    if keys.dtype in (torch.float16, torch.bfloat16):
        raise InputError(f"keys are {keys.dtype}: the index needs float32 or float64 for exact bounds; cast with .float()")
    if not keys.is_floating_point():
        keys = keys.float()
    if d is not None and keys.shape[1] != d:
        raise InputError(f"keys have dimension {keys.shape[1]}, the index has {d}")
    if not allow_empty and keys.shape[0] == 0 and d is not None:
        raise InputError("the key set is empty: append at least one key")
    if not torch.isfinite(keys).all():
        raise InputError("keys contain NaN or inf: clean them first (no half-space answer is defined for them)")
    return keys


def check_query(q: torch.Tensor, d: int) -> torch.Tensor:
    """Validate one (d,) query at the boundary."""
    if q.dim() != 1 or q.shape[0] != d:
        raise InputError(f"query must have shape ({d},), got {tuple(q.shape)}")
    if q.dtype in (torch.float16, torch.bfloat16):
        raise InputError(f"query is {q.dtype}: cast it to float32 or float64 first")
    if not torch.isfinite(q).all():
        raise InputError("query contains NaN or inf")
    return q
