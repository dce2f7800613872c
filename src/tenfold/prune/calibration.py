"""Calibration passes at linear cost: cached layer inputs, each layer run once per pass.

`LayerInputs.capture` runs the model's embeddings once and keeps the inputs of the first decoder
layer for every calibration batch, with the keyword arguments each layer receives (causal masks,
rotary embeddings; they differ between sliding-window and global layers, so they are kept per
layer). A pass then walks the layers in order: layer l runs on the cached inputs, its outputs
replace them and become the inputs of layer l+1 (SparseGPT's pattern). Statistics of layer l's
output projections come from that one run, so a pass over L layers costs L layer runs, not the
L(L+1)/2 of re-running layers 0..l for every l.

For each site (attention output projection, MLP output projection) we keep X^T X (float64), the
column sums and the token count: enough for the numerical score, the compensation, Wanda-sp's
||X_j|| and FLAP's channel variance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

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


def _to(x, device: torch.device):
    if torch.is_tensor(x):
        return x.detach().to(device)
    if isinstance(x, tuple):
        return tuple(_to(v, device) for v in x)
    if isinstance(x, list):
        return [_to(v, device) for v in x]
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x


@dataclass
class LayerInputs:
    """The current inputs of one decoder layer for every calibration batch (on the compute device)."""

    hidden: list[torch.Tensor]  # one (batch, seq, hidden) tensor per calibration batch
    calls: dict[int, dict[int, tuple[tuple, dict]]]  # batch size -> layer -> (extra args, kwargs)
    device: torch.device
    layer_runs: int = 0  # full passes of one layer over the calibration set (the cost unit)
    log: list[int] = field(default_factory=list)  # which layer each run was of

    @classmethod
    @torch.no_grad()
    def capture(cls, model: nn.Module, layers: nn.ModuleList, calibration: torch.Tensor, batch_size: int,
                device: torch.device) -> LayerInputs:
        """Inputs of layer 0 for every batch; every layer's call arguments once per batch size."""
        hidden: list[torch.Tensor] = []
        calls: dict[int, dict[int, tuple[tuple, dict]]] = {}

        def record(index: int, keep_hidden: bool):
            def fn(_module, args, kwargs):
                h = args[0] if args else kwargs["hidden_states"]
                extra = {k: v for k, v in kwargs.items() if k != "hidden_states"}
                calls.setdefault(len(h), {})[index] = (_to(args[1:], device), _to(extra, device))
                if keep_hidden:
                    hidden.append(h.detach().to(device))
                if index == stop_at:
                    raise _Stop
            return fn

        was_training = model.training
        model.eval()
        embed_device = model.get_input_embeddings().weight.device
        if embed_device.type == "meta":
            embed_device = device
        try:
            for start in range(0, len(calibration), batch_size):
                batch = calibration[start: start + batch_size]
                first_of_size = len(batch) not in calls
                stop_at = len(layers) - 1 if first_of_size else 0
                handles = [layers[i].register_forward_pre_hook(record(i, i == 0), with_kwargs=True)
                           for i in (range(len(layers)) if first_of_size else [0])]
                try:
                    model(input_ids=batch.to(embed_device), use_cache=False)
                except _Stop:
                    pass
                finally:
                    for h in handles:
                        h.remove()
        finally:
            model.train(was_training)
        return cls(hidden, calls, device)

    @torch.no_grad()
    def run(self, layer: nn.Module, index: int, sites: Iterable[tuple[nn.Module, bool]] = (),
            advance: bool = True) -> dict[nn.Module, SiteStats]:
        """Run `layer` (number `index`) on every cached batch; return the statistics of `sites`.

        `sites` are (module, stop): the inputs of `module` are accumulated into a `SiteStats`, and
        `stop` ends the layer's run right there (nothing after it is needed). With `advance`, the
        outputs replace the cached inputs (they are the next layer's inputs).
        """
        self.collected: dict[nn.Module, SiteStats] = {}
        handles = [m.register_forward_pre_hook(self._accumulate(m, stop)) for m, stop in sites]
        layer.eval()
        try:
            for b, h in enumerate(self.hidden):
                args, kwargs = self.calls[len(h)][index]
                try:
                    out = layer(h, *args, **kwargs)
                except _Stop:
                    continue
                if advance:
                    self.hidden[b] = out[0] if isinstance(out, tuple) else out
        finally:
            for handle in handles:
                handle.remove()
        self.layer_runs += 1
        self.log.append(index)
        return self.collected

    def _accumulate(self, module: nn.Module, stop: bool):
        def fn(_module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)
            s = self.collected.get(module)
            if s is None:
                d = x.shape[1]
                s = self.collected[module] = SiteStats(torch.zeros(d, d, dtype=torch.float64, device=x.device),
                                                       torch.zeros(d, dtype=torch.float64, device=x.device), 0)
            s.gram += x.T @ x
            s.total += x.sum(0)
            s.count += x.shape[0]
            if stop:
                raise _Stop
        return fn


def site_statistics(inputs: LayerInputs, block: Block, index: int, advance: bool = True) -> tuple[SiteStats, SiteStats]:
    """One run of layer `index`: the statistics of both output projections' inputs (and its outputs)."""
    stats = inputs.run(block.layer, index, [(block.attn_out, False), (block.mlp_out, False)], advance=advance)
    return stats[block.attn_out], stats[block.mlp_out]
