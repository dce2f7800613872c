"""The numerical score's behaviour, measured: its distribution per layer, lambda, and the alpha cliff.

Why these three (derivation, ours; eq. numbers are the paper's): the objective of eq. (3)-(5) is
quadratic with stationary point (H_l + lambda 1 1^T) z = H_l 1 + lambda r 1, so with u = H_l^{-1} 1
and s = 1^T u (Sherman-Morrison)

    z = 1 - rho D (lambda s / (1 + lambda s)) u / s.

Within a layer the ranking is that of u, whatever lambda and rho. The layer's mean z is
1 - rho lambda s / (1 + lambda s): pinned near 1 - rho once lambda s >> 1 (our lambda is
mean(diag(H_l)), where lambda s is large), so across layers the global ranking compares the *shape*
of each layer's u / s, and lambda only matters where lambda s is not large. Heads enter the ranking
as alpha times a mean z (eq. 7-8), alpha = 4 D_h / 3 (85 at D_h = 64): a unit whose mean z is well
above 1 / alpha outranks every MLP channel whose z is below 1, so unit pruning happens only for
units whose mean z is near or below zero (a sign test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tenfold.prune.calibration import SiteStats
from tenfold.prune.pruner import Plan, allocate
from tenfold.prune.scores import NumericalConfig, head_scores, numerical_score
from tenfold.prune.surgery import Block, out_weight


@dataclass
class ScoreProbe:
    """A `score_model` visitor: numerical scores of every layer for each lambda (x mean diag) and ratio."""

    lambdas: tuple[float, ...]
    ratios: tuple[float, ...]
    channel_z: dict[tuple[float, float], list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def __call__(self, index: int, block: Block, attn: SiteStats, mlp: SiteStats) -> None:
        self.blocks.append(Block(block.layer, block.fam, block.n_heads, block.n_kv, block.head_dim))
        wa, wm = out_weight(block.attn_out).detach(), out_weight(block.mlp_out).detach()
        for lam in self.lambdas:
            for r in self.ratios:
                cfg = NumericalConfig(lam=lam)
                za = numerical_score(attn.gram, wa, r, cfg).cpu()
                zm = numerical_score(mlp.gram, wm, r, cfg).cpu()
                self.channel_z.setdefault((lam, r), []).append((za, zm))

    def scores(self, lam: float, ratio: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(unit scores by eq. 7, channel scores) per layer."""
        return [(head_scores(za, b.unit_width), zm) for b, (za, zm) in zip(self.blocks, self.channel_z[(lam, ratio)],
                                                                          strict=True)]


def z_summary(z: torch.Tensor) -> dict:
    z = z.double()
    q = torch.quantile(z, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
    return {"mean": float(z.mean()), "std": float(z.std()), "min": float(z.min()), "q05": float(q[0]),
            "median": float(q[1]), "q95": float(q[2]), "max": float(z.max()),
            "share_below_0": float((z < 0).double().mean()), "share_above_1": float((z > 1).double().mean())}


def distribution_table(probe: ScoreProbe, lam: float, ratio: float) -> dict:
    """Per layer and site: the summary of its channel scores z (the shape the global ranking compares)."""
    out = {}
    for i, (za, zm) in enumerate(probe.channel_z[(lam, ratio)]):
        out[f"layer {i} attn"] = z_summary(za)
        out[f"layer {i} mlp"] = z_summary(zm)
    return out


def alpha_cliff(probe: ScoreProbe, lam: float, ratio: float, plan_alpha: Plan, plan_standardised: Plan) -> dict:
    """How many attention units the alpha scaling shelters: units whose alpha x mean z exceeds every MLP
    channel score (removable only after every channel of every layer), units with mean z <= 0, and units
    removed by the alpha and by FLAP's standardised ranking of the same scores."""
    scores = probe.scores(lam, ratio)
    top_channel = max(float(zm.max()) for _, zm in scores)
    alphas = [b.unit_params() / b.channel_params() for b in probe.blocks]
    units = sum(b.n_units for b in probe.blocks)
    return {
        "units": units,
        "alpha": alphas[0],
        "units_above_every_channel": sum(int((a * zu > top_channel).sum()) for a, (zu, _) in zip(alphas, scores, strict=True)),
        "units_with_mean_z_at_or_below_0": sum(int((zu <= 0).sum()) for zu, _ in scores),
        "units_removed_alpha": units - sum(len(k) for k in plan_alpha.keep_units),
        "units_removed_standardised": units - sum(len(k) for k in plan_standardised.keep_units),
    }


def removed_set(plan: Plan, bl: list[Block]) -> set[tuple[int, int, int]]:
    """(layer, 0 unit / 1 channel, index) of everything the plan removes."""
    out: set[tuple[int, int, int]] = set()
    for li, (b, u, c) in enumerate(zip(bl, plan.keep_units, plan.keep_channels, strict=True)):
        out |= {(li, 0, j) for j in set(range(b.n_units)) - set(u.tolist())}
        out |= {(li, 1, j) for j in set(range(b.n_channels)) - set(c.tolist())}
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x)


def lambda_sensitivity(probe: ScoreProbe, ratio: float, reference: float = 1.0) -> dict:
    """For each lambda: the rank correlation of the pooled alpha-ranking values (every unit and channel of
    every layer) with those at `reference`, and the overlap (Jaccard) of what the alpha allocation removes."""
    def pooled(lam):
        vals = []
        for b, (zu, zm) in zip(probe.blocks, probe.scores(lam, ratio), strict=True):
            vals += (b.unit_params() / b.channel_params() * zu).tolist() + zm.tolist()
        return np.asarray(vals)

    ref_vals = pooled(reference)
    ref_set = removed_set(allocate(probe.blocks, probe.scores(reference, ratio), [ratio] * len(probe.blocks), "alpha"),
                          probe.blocks)
    out = {}
    for lam in probe.lambdas:
        plan = allocate(probe.blocks, probe.scores(lam, ratio), [ratio] * len(probe.blocks), "alpha")
        removed = removed_set(plan, probe.blocks)
        ra, rb = _ranks(pooled(lam)), _ranks(ref_vals)
        out[f"{lam:g}"] = {
            "spearman_vs_reference": float(np.corrcoef(ra, rb)[0, 1]),
            "jaccard_removed_vs_reference": len(removed & ref_set) / max(1, len(removed | ref_set)),
            "units_removed": sum(b.n_units - len(k) for b, k in zip(probe.blocks, plan.keep_units, strict=True)),
            "mean_z_per_layer": [round(float(zm.mean()), 4) for _, zm in probe.channel_z[(lam, ratio)]],
        }
    return out
