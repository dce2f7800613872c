"""An exact half-space index for real KV caches: a low-rank bound over contiguous blocks (beyond the
paper; ours).

A tree over raw coordinates cannot prune when keys have high intrinsic dimension. Here keys stay in
sequence order, cut into blocks of `block` consecutive keys (real caches have locality: neighbouring
tokens have similar keys). In the float64 basis B of the keys' raw second moment (largest directions
first), split every key into its top-r coordinates z = B_r^T k and the rest, with norm rho = ||B_⊥^T k||.
For a query q (top-r coordinates p, rest-norm sigma), by Cauchy-Schwarz on the rest

    <q, k> = <p, z> + <B_⊥^T q, B_⊥^T k> <= <p, z> + sigma * rho,

and over a block, <p, z> <= sum_i max(p_i lo_i, p_i hi_i) (the block's box in the top-r coordinates)
and rho <= the block's largest rho. A block whose bound is <= b - margin holds no key with
<q, k> > b and is skipped without a dot product; the keys of the other blocks are scored exactly.
`margin` is the rigorous round-off bound of `index.roundoff_margin`, so the answer is exact.

With `block=1` the box is the key's own top-r coordinates: every key gets an exact r-dimensional
partial dot product plus the Cauchy-Schwarz bound of the rest (a per-key filter, no locality needed).

Appends go to the open last block (its box and rho grow); the basis stays the one of the first keys
(the bound holds for any orthonormal basis, only its tightness depends on it). Cost of a query:
(number of blocks) * (2r + 1) flops for the bounds (r + 1 with `block=1`), then d flops per key of
the opened blocks.
"""

from __future__ import annotations

import torch

from tenfold.core.errors import InputError
from tenfold.hsr.index import QueryStats, check_keys, check_query, principal_basis, roundoff_margin


class LowRankBlockIndex:
    """Exact half-space reporting over keys kept in sequence order (see the module docstring).

    keys: (n, d) float32/float64, in sequence order. `rank`: r, the top directions bounded per block
    by a box; `block`: keys per block. `last_stats.bounds` counts block bounds, each about (2r + 1)/d
    of a key's dot product.
    """

    def __init__(self, keys: torch.Tensor, rank: int = 16, block: int = 32, basis: torch.Tensor | None = None):
        keys = check_keys(keys)
        n, d = keys.shape
        if not 1 <= rank <= d:
            raise InputError(f"rank must be in [1, {d}] (the key dimension), got {rank}")
        if block < 1:
            raise InputError(f"block must be at least 1, got {block}")
        self.d, self.rank, self.block = d, rank, block
        self.dtype, self.device = keys.dtype, keys.device
        if basis is None:
            self.basis, self.defect = principal_basis(keys, centred=False) if n else (
                torch.eye(d, dtype=torch.float64, device=keys.device), 0.0)
        else:
            self.basis = basis.to(torch.float64)
            self.defect = float((self.basis.T @ self.basis - torch.eye(d, dtype=torch.float64)).norm())
        self._keys = keys.new_zeros((max(n, block), d))
        self._lo = torch.zeros(0, rank, dtype=torch.float64, device=keys.device)
        self._hi = torch.zeros(0, rank, dtype=torch.float64, device=keys.device)
        self._rho = torch.zeros(0, dtype=torch.float64, device=keys.device)
        self._n = 0
        self.k_inf = self.k_2 = 0.0
        self.last_stats = QueryStats()
        if n:
            self.append(keys)

    def __len__(self) -> int:
        return self._n

    @property
    def keys(self) -> torch.Tensor:
        return self._keys[: self._n]

    def append(self, keys: torch.Tensor) -> torch.Tensor:
        """Add keys (m, d) or (d,) at the end of the sequence; return their ids."""
        keys = check_keys(keys.unsqueeze(0) if keys.dim() == 1 else keys, self.d, allow_empty=True).to(self.dtype)
        m = len(keys)
        start = self._n
        if start + m > len(self._keys):  # grow the storage geometrically
            grown = self._keys.new_zeros((max(2 * len(self._keys), start + m), self.d))
            grown[:start] = self._keys[:start]
            self._keys = grown
        self._keys[start:start + m] = keys
        self._n += m
        if m:
            self.k_inf = max(self.k_inf, float(keys.abs().max()))
            self.k_2 = max(self.k_2, float(keys.double().norm(dim=1).max()))
            self._update_blocks(start // self.block)
        return torch.arange(start, start + m, device=self.device)

    def _update_blocks(self, first: int) -> None:
        """Recompute the boxes and residual norms of blocks `first`.. (the open block and new ones)."""
        n_blocks = -(-self._n // self.block)
        z = self._keys[first * self.block: self._n].double() @ self.basis  # (m, d) rotated coordinates
        top, rest = z[:, : self.rank], z[:, self.rank:].norm(dim=1)
        pad = (n_blocks - first) * self.block - len(z)
        if pad:  # the open block: repeat its last key (changes no max or min)
            top = torch.cat([top, top[-1:].expand(pad, -1)])
            rest = torch.cat([rest, rest[-1:].expand(pad)])
        top = top.view(-1, self.block, self.rank)
        self._lo = torch.cat([self._lo[:first], top.amin(1)])
        self._hi = torch.cat([self._hi[:first], top.amax(1)])
        self._rho = torch.cat([self._rho[:first], rest.view(-1, self.block).amax(1)])

    @property
    def bound_cost(self) -> float:
        """Cost of one block bound in units of a key's d-dimensional dot product."""
        return (self.rank + 1 if self.block == 1 else 2 * self.rank + 1) / self.d

    def upper_bounds(self, q64: torch.Tensor) -> torch.Tensor:
        """(blocks,) float64 upper bounds of <q, k> over each block (before the round-off margin)."""
        z = q64 @ self.basis
        p, sigma = z[: self.rank], z[self.rank:].norm()
        if self.block == 1:  # one key per block: the box is a point, the bound an exact partial dot product
            return self._hi @ p + sigma * self._rho
        return self._hi @ p.clamp(min=0) + self._lo @ p.clamp(max=0) + sigma * self._rho

    def report(self, q: torch.Tensor, b: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, scores) of every key with <q, k> > b, in sequence order; scores are the computed <q, k>."""
        q = check_query(q, self.d).to(self.dtype)
        q64 = q.double()
        margin = roundoff_margin(q64, b, self.dtype, self.k_inf, self.k_2, self.defect)
        upper = self.upper_bounds(q64)
        blocks = torch.nonzero(upper > b - margin).flatten()
        full = self._n // self.block
        closed, open_ = blocks[blocks < full], blocks[blocks >= full]
        scores = (self._keys[: full * self.block].view(full, self.block, self.d)[closed] @ q).flatten()
        ids = (closed[:, None] * self.block + torch.arange(self.block, device=self.device)).flatten()
        if len(open_):  # the partly filled last block
            tail = torch.arange(full * self.block, self._n, device=self.device)
            ids, scores = torch.cat([ids, tail]), torch.cat([scores, self._keys[tail] @ q])
        keep = scores > b
        self.last_stats = QueryStats(scored=len(ids), reported=int(keep.sum()), bounds=len(upper))
        return ids[keep], scores[keep]

    def query(self, q: torch.Tensor, b: float) -> torch.Tensor:
        """Sorted ids of every key with <q, k> > b."""
        return self.report(q, b)[0]
