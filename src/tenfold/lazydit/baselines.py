"""The methods LazyDiT is compared with, all run through the same pipeline and MACs accounting:

- DDIM with fewer steps (the paper's main baseline, at equal MACs);
- static caching: all modules computed on evenly spaced steps and reused in between (FORA-style,
  Selvaraju et al. 2024; DeepCache's uniform schedule, Ma et al. 2024);
- Learning-to-Cache (Ma et al., NeurIPS 2024): an input-independent router, one learned scalar per
  (step, block, module), trained with the same interpolation and loss as LazyDiT's gates, then the
  least useful modules are skipped until the MACs budget is met.
"""

from __future__ import annotations

import torch
from torch import nn

from tenfold.core.errors import InputError
from tenfold.lazydit.dit import MacsProfile
from tenfold.lazydit.gates import KINDS


class StaticSchedule:
    """A fixed compute/reuse table: keep[step, layer, kind] (True = compute), the same for every input."""

    def __init__(self, keep: torch.Tensor):
        if keep.ndim != 3 or keep.shape[2] != len(KINDS) or keep.dtype != torch.bool:
            raise InputError(f"a static schedule is a bool tensor (steps, layers, {len(KINDS)}), got {tuple(keep.shape)}")
        self.keep = keep
        self.num_steps, self.num_layers = keep.shape[:2]

    def keep_probability(self, kind: str, step: int, layer: int, z: torch.Tensor) -> torch.Tensor:
        value = self.keep[step, layer, KINDS.index(kind)].to(z.dtype)
        return value.expand(z.shape[0])

    def saved_macs(self, macs: MacsProfile) -> float:
        """MACs per sample this schedule saves over a full run (step 0 always computes)."""
        skipped = ~self.keep[1:]
        return float(skipped[..., 0].sum() * macs.attn + skipped[..., 1].sum() * macs.mlp)


def fewer_steps(steps: int, macs_ratio: float) -> int:
    """DDIM step count with the same MACs as a run at `macs_ratio` of `steps` full steps."""
    if not 0 < macs_ratio <= 1.5:
        raise InputError(f"macs_ratio must be in (0, 1.5], got {macs_ratio}")
    return max(1, round(steps * macs_ratio))


def static_cache_schedule(steps: int, layers: int, compute_steps: int) -> StaticSchedule:
    """Compute every module on `compute_steps` evenly spaced steps (step 0 included); reuse elsewhere."""
    if not 1 <= compute_steps <= steps:
        raise InputError(f"compute_steps must be in [1, {steps}], got {compute_steps}")
    chosen = torch.linspace(0, steps - 1, compute_steps).round().long().unique()
    keep = torch.zeros(steps, layers, len(KINDS), dtype=torch.bool)
    keep[chosen] = True
    return StaticSchedule(keep)


def static_cache_for_budget(steps: int, layers: int, macs: MacsProfile, target_saved: float) -> StaticSchedule:
    """The static-cache schedule whose saved MACs are closest to `target_saved` (per sample)."""
    options = [static_cache_schedule(steps, layers, k) for k in range(1, steps + 1)]
    return min(options, key=lambda s: abs(s.saved_macs(macs) - target_saved))


class L2CRouter(nn.Module):
    """Learning-to-Cache's router: one logit per (step, block, module), independent of the input."""

    def __init__(self, num_steps: int, num_layers: int):
        super().__init__()
        self.num_steps, self.num_layers = num_steps, num_layers
        self.logits = nn.Parameter(torch.zeros(num_steps, num_layers, len(KINDS)))

    def keep_probability(self, kind: str, step: int, layer: int, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits[step, layer, KINDS.index(kind)]).to(z.dtype).expand(z.shape[0])

    @torch.no_grad()
    def schedule_for_budget(self, macs: MacsProfile, target_saved: float) -> StaticSchedule:
        """Skip the (step >= 1) modules with the lowest learned keep-probability until `target_saved` MACs."""
        keep = torch.ones(self.num_steps, self.num_layers, len(KINDS), dtype=torch.bool)
        cost = torch.tensor([macs.attn, macs.mlp])
        order = torch.argsort(self.logits[1:].flatten(), stable=True)
        saved = 0.0
        for flat in order.tolist():
            if saved >= target_saved:
                break
            step, rest = divmod(flat, self.num_layers * len(KINDS))
            layer, kind = divmod(rest, len(KINDS))
            gain = float(cost[kind])
            if abs(saved + gain - target_saved) > abs(saved - target_saved):
                break
            keep[step + 1, layer, kind] = False
            saved += gain
        return StaticSchedule(keep)
