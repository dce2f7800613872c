"""The competing structured-pruning scores, on the same units and calibration set as the paper's.

Every scorer returns, per layer, one score per attention unit and one per MLP channel (higher =
more important). A unit's score is per output-projection channel of the unit (the mean of its
channels' scores, or its aggregate divided by its width), as the paper's eq. (7) does for heads, so
every score can be put under the paper's alpha-scaled global ranking (eq. 8); FLAP's standardised
and the uniform allocations do not depend on that scale. Sources:
- magnitude: L2 norm of every weight a unit owns (the "L2 weight" baseline of LLM-Pruner / FLAP).
- wanda-sp: structured Wanda (as defined in FLAP, An et al. 2024): sum_i |W_ji| * ||X_j||_2 over the
  output projection's input channel j; a unit's score is the mean over its channels.
- flap: FLAP's fluctuation metric Var(X_j) * ||W_j,:||_2^2 (An et al. 2024, eq. 4), with the bias
  compensation b += sum_{j pruned} mean(X_j) W_j,: applied at removal (see `pruner.py`).
- taylor: LLM-Pruner's first-order Taylor importance sum |w * dL/dw| over the unit's weights
  (Ma et al. 2023, eq. 5, element-wise first order), gradients of the calibration LM loss.
"""

from __future__ import annotations

import torch
from torch import nn

from tenfold.prune.calibration import SiteStats
from tenfold.prune.surgery import Block, out_weight

Scores = tuple[torch.Tensor, torch.Tensor]  # (unit scores (n_units,), channel scores (n_channels,))


def _per_unit(channel_values: torch.Tensor, block: Block) -> torch.Tensor:
    return channel_values.view(block.n_units, -1).mean(dim=1)


def magnitude_scores(block: Block) -> Scores:
    units = torch.stack([torch.sqrt(sum((w.double() ** 2).sum() for w in block.unit_weights(u)))
                         for u in range(block.n_units)]) / block.unit_width
    channels = torch.sqrt(sum((w.double() ** 2).sum(dim=1) for w in block.channel_weights()))
    return units, channels


def wanda_sp_scores(block: Block, attn: SiteStats, mlp: SiteStats) -> Scores:
    def site(module: nn.Module, stats: SiteStats) -> torch.Tensor:
        w = out_weight(module).double().to(stats.gram.device)
        return w.abs().sum(dim=1) * stats.sq_norm.sqrt()
    return _per_unit(site(block.attn_out, attn), block), site(block.mlp_out, mlp)


def flap_scores(block: Block, attn: SiteStats, mlp: SiteStats) -> Scores:
    def site(module: nn.Module, stats: SiteStats) -> torch.Tensor:
        w = out_weight(module).double().to(stats.gram.device)
        return stats.variance * (w**2).sum(dim=1)
    return _per_unit(site(block.attn_out, attn), block), site(block.mlp_out, mlp)


def taylor_gradients(model: nn.Module, calibration: torch.Tensor, batch_size: int = 8) -> None:
    """Accumulate d(mean LM loss)/dw over the calibration set into every `.grad`."""
    device = next(model.parameters()).device
    model.zero_grad(set_to_none=True)
    n = len(calibration)
    for start in range(0, n, batch_size):
        x = calibration[start: start + batch_size].to(device)
        loss = model(input_ids=x, labels=x, use_cache=False).loss * (len(x) / n)
        loss.backward()


def taylor_scores(block: Block) -> Scores:
    def first_order(ws, gs, dim=None):
        return sum((w.double() * g.double()).abs().sum(dim=dim) if dim is not None else
                   (w.double() * g.double()).abs().sum() for w, g in zip(ws, gs, strict=True))
    units = torch.stack([first_order(block.unit_weights(u), block.unit_weights(u, grad=True))
                         for u in range(block.n_units)]) / block.unit_width
    channels = first_order(block.channel_weights(), block.channel_weights(grad=True), dim=1)
    return units, channels


def flap_bias(block: Block, site: str, mean: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
    """FLAP's bias compensation for removing input channels `pruned` of an output projection: (D',).

    `mean` is the dense model's per-channel mean input of that projection.
    """
    w = out_weight(block.site(site)).double().to(mean.device)
    return mean[pruned] @ w[pruned]
