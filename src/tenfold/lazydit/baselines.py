"""The methods LazyDiT is compared with, all run through the same pipeline and MACs accounting:

- DDIM with fewer steps (the paper's main baseline, at equal MACs);
- static caching: all modules computed on evenly spaced steps and reused in between (FORA-style,
  Selvaraju et al. 2024; DeepCache's uniform schedule, Ma et al. 2024);
- Learning-to-Cache (Ma et al., NeurIPS 2024): an input-independent router, one learned scalar per
  (step, block, module), trained with the same objective as LazyDiT's gates, then the least useful
  modules are skipped until the MACs budget is met.

Budgets are matched so that a baseline never gets fewer MACs than the LazyDiT run it is compared with, less
`Settings.macs_tolerance` (0.01 of full DDIM's MACs in every profile).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tenfold.core.errors import InputError
from tenfold.lazydit.dit import MacsProfile
from tenfold.lazydit.gates import KINDS


class StaticSchedule:
    """A fixed compute/reuse table: keep[step, layer, kind] (True = compute), the same for every input."""

    gate_cost = False  # a table lookup, no lazy learning layer

    def __init__(self, keep: torch.Tensor):
        if keep.ndim != 3 or keep.shape[2] != len(KINDS) or keep.dtype != torch.bool:
            raise InputError(f"a static schedule is a bool tensor (steps, layers, {len(KINDS)}), got {tuple(keep.shape)}")
        self.keep = keep
        self.num_steps, self.num_layers = keep.shape[:2]

    def is_active(self, step: int) -> bool:
        return True

    def keep_probability(self, kind: str, step: int, layer: int, z: torch.Tensor) -> torch.Tensor:
        value = self.keep[step, layer, KINDS.index(kind)].to(device=z.device, dtype=z.dtype)
        return value.expand(z.shape[0])

    def saved_macs(self, macs: MacsProfile) -> float:
        """MACs per sample this schedule saves over a full run (step 0 always computes)."""
        skipped = ~self.keep[1:]
        return float(skipped[..., 0].sum() * macs.attn + skipped[..., 1].sum() * macs.mlp)


def fewer_steps(steps: int, macs_ratio: float) -> int:
    """The fewest DDIM steps with at least the MACs of a run at `macs_ratio` of `steps` full steps."""
    if not 0 < macs_ratio <= 1.5:
        raise InputError(f"macs_ratio must be in (0, 1.5], got {macs_ratio}")
    return max(1, math.ceil(steps * macs_ratio - 1e-9))


def static_cache_schedule(steps: int, layers: int, compute_steps: int) -> StaticSchedule:
    """Compute every module on `compute_steps` evenly spaced steps (step 0 included); reuse elsewhere."""
    if not 1 <= compute_steps <= steps:
        raise InputError(f"compute_steps must be in [1, {steps}], got {compute_steps}")
    chosen = torch.linspace(0, steps - 1, compute_steps).round().long().unique()
    keep = torch.zeros(steps, layers, len(KINDS), dtype=torch.bool)
    keep[chosen] = True
    return StaticSchedule(keep)


def static_cache_for_budget(steps: int, layers: int, macs: MacsProfile, target_saved: float) -> StaticSchedule:
    """The static-cache schedule saving the most MACs without saving more than `target_saved` (per sample)."""
    options = [static_cache_schedule(steps, layers, k) for k in range(1, steps + 1)]
    within = [s for s in options if s.saved_macs(macs) <= target_saved + 1e-6 * macs.full]
    return max(within, key=lambda s: s.saved_macs(macs))


class L2CRouter(nn.Module):
    """Learning-to-Cache's router: one logit per (step, block, module), independent of the input."""

    gate_cost = False  # input-independent: the schedule is fixed before sampling

    def __init__(self, num_steps: int, num_layers: int, active: Sequence[int] | None = None):
        super().__init__()
        self.num_steps, self.num_layers = num_steps, num_layers
        self.logits = nn.Parameter(torch.zeros(num_steps, num_layers, len(KINDS)))
        mask = torch.zeros(num_steps, dtype=torch.bool)
        mask[list(range(1, num_steps)) if active is None else list(active)] = True
        self.register_buffer("active", mask)

    def is_active(self, step: int) -> bool:
        return bool(self.active[step])

    def keep_probability(self, kind: str, step: int, layer: int, z: torch.Tensor) -> torch.Tensor:
        logit = self.logits[step, layer, KINDS.index(kind)].to(device=z.device, dtype=z.dtype)
        return torch.sigmoid(logit).expand(z.shape[0])

    @torch.no_grad()
    def schedule_for_budget(self, macs: MacsProfile, target_saved: float) -> StaticSchedule:
        """Skip the active modules with the lowest learned keep-probability while the saving stays within
        `target_saved` MACs per sample."""
        keep = torch.ones(self.num_steps, self.num_layers, len(KINDS), dtype=torch.bool)
        cost = [macs.attn, macs.mlp]
        logits = self.logits.masked_fill(~self.active[:, None, None], float("inf"))
        saved = 0.0
        for flat in torch.argsort(logits.flatten(), stable=True).tolist():
            step, rest = divmod(flat, self.num_layers * len(KINDS))
            layer, kind = divmod(rest, len(KINDS))
            if not self.active[step] or saved + cost[kind] > target_saved + 1e-6 * macs.full:
                break
            keep[step, layer, kind] = False
            saved += cost[kind]
        return StaticSchedule(keep)
