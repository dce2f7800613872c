"""Calibration statistics of the output projections' inputs, collected layer by layer with hooks.

For each site (attention output projection, MLP output projection) of the requested layers we keep
X^T X (float64), the column sums and the token count: enough for the numerical score, the
compensation, Wanda-sp's ||X_j|| and FLAP's channel variance. The forward pass stops right after
the last requested layer, so scoring layer l costs a pass through layers 0..l only, and memory
holds the Gram matrices of the requested layers only (no full-model backward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tenfold.prune.surgery import Block


@dataclass
class SiteStats:
    gram: torch.Tensor  # X^T X, (D, D) float64
    total: torch.Tensor  # sum over tokens of X, (D,) float64
    count: int

    @property
    def mean(self) -> torch.Tensor:
        return self.total / max(1, self.count)

    @property
    def sq_norm(self) -> torch.Tensor:
        """||X_j||_2^2 per channel."""
        return self.gram.diagonal()

    @property
    def variance(self) -> torch.Tensor:
        """Unbiased per-channel sample variance (FLAP's fluctuation)."""
        n = max(2, self.count)
        return ((self.sq_norm - self.count * self.mean**2) / (n - 1)).clamp_min(0.0)


class _Stop(Exception):
    pass


@torch.no_grad()
def collect(model: nn.Module, blocks: list[Block], layers: list[int], calibration: torch.Tensor,
            batch_size: int = 8) -> dict[tuple[int, str], SiteStats]:
    """Statistics of the inputs of the attention and MLP output projections of `layers`."""
    stats: dict[tuple[int, str], SiteStats] = {}
    handles = []

    def hook(key):
        def fn(_module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)
            s = stats.get(key)
            if s is None:
                d = x.shape[1]
                s = stats[key] = SiteStats(torch.zeros(d, d, dtype=torch.float64, device=x.device),
                                           torch.zeros(d, dtype=torch.float64, device=x.device), 0)
            s.gram += x.T @ x
            s.total += x.sum(0)
            s.count += x.shape[0]
        return fn

    def stop(*_):
        raise _Stop

    last = max(layers)
    for i in layers:
        for site in ("attn", "mlp"):
            handles.append(blocks[i].site(site).register_forward_pre_hook(hook((i, site))))
    if last < len(blocks) - 1:
        handles.append(blocks[last].layer.register_forward_hook(stop))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(calibration), batch_size):
            try:
                model(input_ids=calibration[start: start + batch_size].to(device), use_cache=False)
            except _Stop:
                pass
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return stats
