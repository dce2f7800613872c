"""Half-space reporting over a growing key set (Chen et al. 2024, Sec. 3 "HSR data structure").

The paper uses the theoretical HSR structure of Agarwal et al. (query O(n^{1-1/floor(d/2)} + k));
here is a practical, exact substitute: a static kd-style tree in the keys' principal-axis basis
(median splits on the widest rotated coordinate, leaves of `leaf_size` keys) whose nodes keep their bounding boxes, queried top-down, all nodes of a
level at once. A node is
  * pruned when max_{k in box} <q, k> <= b - margin (no key of it can qualify),
  * reported whole when min_{k in box} <q, k> > b + margin (every key qualifies),
  * opened otherwise; at the leaves the keys' exact <q, k> are compared with b.
The box bound is sum_i max(q_i lo_i, q_i hi_i) (resp. min), and `margin` covers its float round-off,
so a key with <q, k> > b (as computed by `keys @ q`) is never missed.

Appends use the logarithmic method (Bentley & Saxe 1980): new keys wait in a small buffer that is
scanned directly; a full buffer becomes a tree, and trees of equal size merge, so each key is rebuilt
O(log n) times (amortised O(log^2 n) per append) and a query visits O(log n) trees.

Query cost: O(d * (visited nodes + keys in opened leaves) + reported), where visited nodes depend on
how well the boxes separate the keys from the half-space (low intrinsic dimension helps, as for any
space-partitioning tree); worst case O(n d), never worse than a scan by more than the tree overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tenfold.core.errors import InputError


@dataclass
class _Tree:
    """A static tree over `keys`: level l has 2^l nodes, node j of the last level is a leaf."""

    keys: torch.Tensor  # (n_pad, d) in leaf order, padding rows copy a real key
    basis: torch.Tensor  # (d, d) orthonormal principal axes: boxes live in rotated coordinates
    ids: torch.Tensor  # (n_pad,) global ids, -1 for padding
    lo: list[torch.Tensor]  # per level: (2^l, d) box minima
    hi: list[torch.Tensor]  # per level: (2^l, d) box maxima
    leaf_size: int
    scale: torch.Tensor  # max |coordinate|, for the round-off margin

    @property
    def size(self) -> int:
        return int((self.ids >= 0).sum())


def _build_tree(keys: torch.Tensor, ids: torch.Tensor, leaf_size: int) -> _Tree:
    n, d = keys.shape
    centred = keys[:: max(1, n // 4096)] - keys.mean(0)  # principal axes from a sample
    basis = torch.linalg.eigh(centred.T @ centred)[1].flip(1) if n > 1 else torch.eye(d, dtype=keys.dtype)
    levels = max(0, (max(n, 1) - 1).bit_length() - (leaf_size - 1).bit_length())  # 2^levels leaves of <= leaf_size
    n_pad = leaf_size << levels
    pad = n_pad - n
    keys = torch.cat([keys, keys[:1].expand(pad, d)]) if pad else keys
    ids = torch.cat([ids, ids.new_full((pad,), -1)]) if pad else ids
    rot = keys @ basis
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
    return _Tree(keys.contiguous(), basis, ids, lo, hi, leaf_size, rot.abs().max())


class HalfSpaceIndex:
    """Exact half-space reporting: `query(q, b)` returns the ids of every key k with <q, k> > b.

    keys: (n, d) float tensor (float32 or float64; float16/bfloat16 are refused: cast first).
    """

    def __init__(self, keys: torch.Tensor, leaf_size: int = 64, buffer_size: int = 256):
        if leaf_size < 1 or buffer_size < 1:
            raise InputError(f"leaf_size and buffer_size must be positive, got {leaf_size}, {buffer_size}")
        keys = _check_keys(keys)
        self.d = keys.shape[1]
        self.dtype, self.device = keys.dtype, keys.device
        self.leaf_size, self.buffer_size = leaf_size, buffer_size
        self.trees: list[_Tree] = []
        self._buffer = keys.new_zeros((0, self.d))
        self._n = 0
        self.last_touched = 0  # keys whose dot product the last query computed
        if len(keys):
            self.trees.append(_build_tree(keys, torch.arange(len(keys), device=keys.device), leaf_size))
            self._n = len(keys)

    def __len__(self) -> int:
        return self._n

    @property
    def keys(self) -> torch.Tensor:
        """All keys in id order (n, d)."""
        out = self._buffer.new_empty((self._n, self.d))
        for t in self.trees:
            real = t.ids >= 0
            out[t.ids[real]] = t.keys[real]
        out[self._n - len(self._buffer):] = self._buffer
        return out

    def keys_at(self, ids: torch.Tensor) -> torch.Tensor:
        """The keys with these ids (m, d), without materialising all keys."""
        if not hasattr(self, "_pos") or len(self._pos) != self._n - len(self._buffer):
            self._pos = torch.empty(self._n - len(self._buffer), 2, dtype=torch.long, device=self.device)
            for ti, t in enumerate(self.trees):
                real = torch.nonzero(t.ids >= 0).flatten()
                self._pos[t.ids[real], 0] = ti
                self._pos[t.ids[real], 1] = real
        out = self._buffer.new_empty((len(ids), self.d))
        base = self._n - len(self._buffer)
        in_buf = ids >= base
        out[in_buf] = self._buffer[ids[in_buf] - base]
        tree_ids = ids[~in_buf]
        if len(tree_ids):
            pos = self._pos[tree_ids]
            rows = torch.empty(len(tree_ids), self.d, dtype=self.dtype, device=self.device)
            for ti, t in enumerate(self.trees):
                sel = pos[:, 0] == ti
                rows[sel] = t.keys[pos[sel, 1]]
            out[~in_buf] = rows
        return out

    def append(self, keys: torch.Tensor) -> torch.Tensor:
        """Add keys (m, d) or (d,); return their ids (n, ..., n + m - 1)."""
        keys = _check_keys(keys.unsqueeze(0) if keys.dim() == 1 else keys, self.d, allow_empty=True).to(self.dtype)
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

    def query(self, q: torch.Tensor, b: float) -> torch.Tensor:
        """Sorted ids (LongTensor) of every key with <q, k> > b; q of shape (d,)."""
        q = _check_query(q, self.d).to(self.dtype)
        found, touched = [], 0
        for t in self.trees:
            ids, n_touched = _query_tree(t, q, float(b))
            found.append(ids)
            touched += n_touched
        if len(self._buffer):
            s = self._buffer @ q
            found.append(torch.nonzero(s > b).flatten() + (self._n - len(self._buffer)))
            touched += len(self._buffer)
        self.last_touched = touched
        if not found:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        return torch.cat(found).sort().values

    def query_many(self, Q: torch.Tensor, b: float) -> list[torch.Tensor]:
        """`query` for each row of Q (m, d): the full-attention (prefill) mode."""
        return [self.query(q, b) for q in Q]


def _query_tree(t: _Tree, q: torch.Tensor, b: float) -> tuple[torch.Tensor, int]:
    eps = torch.finfo(q.dtype).eps
    margin = 8 * eps * t.keys.shape[1] * float(q.abs().max()) * float(t.scale) + eps * abs(b)
    qr = q @ t.basis  # <q, k> = <B^T q, B^T k>
    qp, qn = qr.clamp(min=0), qr.clamp(max=0)
    active = torch.zeros(1, dtype=torch.long, device=q.device)
    whole: list[torch.Tensor] = []  # (level, node) pairs reported without a dot product
    levels = len(t.lo) - 1
    for level in range(levels + 1):
        lo, hi = t.lo[level][active], t.hi[level][active]
        upper = hi @ qp + lo @ qn  # max over the box of <q, k>
        keep = upper > b - margin
        active = active[keep]
        if level < levels:
            lower = lo[keep] @ qp + hi[keep] @ qn  # min over the box
            inside = lower > b + margin
            if inside.any():  # whole subtrees inside the half-space: report their ids without dot products
                whole.append(t.ids.view(1 << level, -1)[active[inside]].flatten())
            active = active[~inside]
            active = torch.stack([2 * active, 2 * active + 1], 1).flatten()
        if len(active) == 0:
            break
    touched = 0
    if len(active):
        leaf_keys = t.keys.view(-1, t.leaf_size, t.keys.shape[1])[active]  # (leaves, L, d)
        leaf_ids = t.ids.view(-1, t.leaf_size)[active]
        s = leaf_keys @ q
        whole.append(leaf_ids[s > b])
        touched = leaf_ids.numel()
    if not whole:
        return torch.zeros(0, dtype=torch.long, device=q.device), touched
    ids = torch.cat(whole)
    return ids[ids >= 0], touched


def _check_keys(keys: torch.Tensor, d: int | None = None, allow_empty: bool = False) -> torch.Tensor:
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


def _check_query(q: torch.Tensor, d: int) -> torch.Tensor:
    if q.dim() != 1 or q.shape[0] != d:
        raise InputError(f"query must have shape ({d},), got {tuple(q.shape)}")
    if q.dtype in (torch.float16, torch.bfloat16):
        raise InputError(f"query is {q.dtype}: cast it to float32 or float64 first")
    if not torch.isfinite(q).all():
        raise InputError("query contains NaN or inf")
    return q
