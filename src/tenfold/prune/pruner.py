"""`prune(model, calibration, ratio, method, compensate)`: score, allocate, compensate, remove.

1. Score every attention unit and MLP channel (the numerical score of Sec. 3.2 or a baseline),
   from calibration statistics of the dense model collected layer by layer.
2. Allocate: `scope="global"` sorts every layer's scores together (Sec. 3.3) and removes the lowest
   until `ratio` of the attention+MLP weights is gone; `scope="layer"` removes `ratio` of each
   layer's units and channels (a list gives one ratio per layer).
3. Layer by layer, in order: re-collect the statistics of layer l from the model whose layers < l
   are already pruned, compensate its output projections (Sec. 3.4; FLAP: bias compensation),
   then remove the units physically.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from tenfold.core.errors import InputError
from tenfold.core.progress import progress
from tenfold.prune import baselines
from tenfold.prune.calibration import SiteStats, collect
from tenfold.prune.compensate import CompensationConfig, compensated_weight
from tenfold.prune.scores import NumericalConfig, head_scores, numerical_score
from tenfold.prune.surgery import (
    Block,
    add_output_bias,
    blocks,
    family,
    out_weight,
    record_sizes,
    set_out_weight,
    shrink_block,
)

METHODS = ("numerical", "magnitude", "wanda-sp", "flap", "taylor")
SCOPES = ("global", "layer")


@dataclass(frozen=True)
class PruneConfig:
    """Everything that changes the numbers besides method, ratio and calibration."""

    scope: str = "global"  # Sec. 3.3: global ranking across layers
    numerical: NumericalConfig = field(default_factory=NumericalConfig)
    compensation: CompensationConfig = field(default_factory=CompensationConfig)
    batch_size: int = 8
    stats_budget_bytes: int = 2 << 30  # Gram matrices held at once while scoring


@dataclass
class Plan:
    """Which attention units and MLP channels each layer keeps."""

    keep_units: list[torch.Tensor]
    keep_channels: list[torch.Tensor]

    def removed_params(self, bl: list[Block]) -> int:
        return sum((b.n_units - len(u)) * b.unit_params() + (b.n_channels - len(c)) * b.channel_params()
                   for b, u, c in zip(bl, self.keep_units, self.keep_channels, strict=True))


def check_inputs(model: nn.Module, calibration: torch.Tensor, ratio, method: str, scope: str) -> list[float]:
    """Validate everything before the model is touched; return one ratio per layer."""
    family(model)
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if scope not in SCOPES:
        raise InputError(f"unknown scope {scope!r}: choose 'global' or 'layer'")
    n_layers = len(blocks(model))
    ratios = [float(r) for r in ratio] if isinstance(ratio, Sequence) else [float(ratio)] * n_layers
    if len(ratios) != n_layers:
        raise InputError(f"{len(ratios)} per-layer ratios given for a model with {n_layers} layers")
    if isinstance(ratio, Sequence) and scope == "global":
        raise InputError("per-layer ratios need scope='layer'")
    for r in ratios:
        if not 0.0 <= r < 1.0:
            raise InputError(f"ratio must be in [0, 1) (the fraction of attention+MLP weights to remove), got {r}")
    if not (torch.is_tensor(calibration) and calibration.dtype == torch.long and calibration.dim() == 2):
        raise InputError("calibration must be a LongTensor of token ids, shape (samples, sequence length)")
    if calibration.shape[0] < 1 or calibration.shape[1] < 2:
        raise InputError(f"calibration needs at least 1 sample of 2+ tokens, got shape {tuple(calibration.shape)}")
    vocab = model.get_input_embeddings().num_embeddings
    if calibration.min() < 0 or calibration.max() >= vocab:
        raise InputError(f"calibration token ids must lie in [0, {vocab}); is it tokenized with this model's tokenizer?")
    if scope == "layer":
        for i, (b, r) in enumerate(zip(blocks(model), ratios, strict=True)):
            if round(r * b.n_units) >= b.n_units:
                raise InputError(f"ratio {r} would remove every attention head of layer {i} "
                                 f"({b.n_units} units); use a lower ratio")
    return ratios


def _stats_chunks(bl: list[Block], budget: int) -> list[list[int]]:
    chunks, cur, used = [], [], 0
    for i, b in enumerate(bl):
        need = 8 * (out_weight(b.attn_out).shape[0] ** 2 + b.n_channels**2)
        if cur and used + need > budget:
            chunks.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += need
    return chunks + [cur]


def score_units(model, bl, calibration, method, ratios, cfg: PruneConfig):
    """Per layer: (unit scores, channel scores); plus dense statistics for FLAP's bias."""
    scores: list[tuple[torch.Tensor, torch.Tensor]] = []
    dense: dict[tuple[int, str], SiteStats] = {}
    if method == "magnitude":
        return [baselines.magnitude_scores(b) for b in bl], dense
    if method == "taylor":
        baselines.taylor_gradients(model, calibration, cfg.batch_size)
        out = [baselines.taylor_scores(b) for b in bl]
        model.zero_grad(set_to_none=True)
        return out, dense
    for chunk in _stats_chunks(bl, cfg.stats_budget_bytes):
        stats = collect(model, bl, chunk, calibration, cfg.batch_size)
        for i in chunk:
            b, sa, sm = bl[i], stats[(i, "attn")], stats[(i, "mlp")]
            if method == "numerical":
                za = numerical_score(sa.gram, out_weight(b.attn_out).detach(), ratios[i], cfg.numerical)
                zm = numerical_score(sm.gram, out_weight(b.mlp_out).detach(), ratios[i], cfg.numerical)
                scores.append((head_scores(za, b.group * b.head_dim), zm))
            elif method == "wanda-sp":
                scores.append(baselines.wanda_sp_scores(b, sa, sm))
            else:
                scores.append(baselines.flap_scores(b, sa, sm))
                dense[(i, "attn")], dense[(i, "mlp")] = sa, sm
    return scores, dense


def allocate(bl: list[Block], scores, ratios: list[float], scope: str, method: str) -> Plan:
    """Turn scores into the kept units/channels of every layer (lowest scores go first)."""
    keep_u, keep_c = [], []
    if scope == "layer":
        for b, (su, sc), r in zip(bl, scores, ratios, strict=True):
            nu, nc = round(r * b.n_units), min(round(r * b.n_channels), b.n_channels - 1)
            keep_u.append(su.argsort(descending=True)[: b.n_units - nu].sort().values.cpu())
            keep_c.append(sc.argsort(descending=True)[: b.n_channels - nc].sort().values.cpu())
        return Plan(keep_u, keep_c)
    # global: one list of (value, cost, layer, kind, index), sorted ascending
    entries = []
    for li, (b, (su, sc)) in enumerate(zip(bl, scores, strict=True)):
        if method == "numerical":  # eq. (8): alpha-scaled head scores beside channel scores
            alpha = b.unit_params() / b.channel_params()
            vu, vc = alpha * su.double(), sc.double()
        else:  # FLAP's global standardisation of each module's scores
            vu, vc = _standardise(su), _standardise(sc)
        entries += [(float(v), b.unit_params(), li, 0, j) for j, v in enumerate(vu.tolist())]
        entries += [(float(v), b.channel_params(), li, 1, j) for j, v in enumerate(vc.tolist())]
    entries.sort(key=lambda e: (e[0], e[2], e[3], e[4]))
    total = sum(b.n_units * b.unit_params() + b.n_channels * b.channel_params() for b in bl)
    budget = ratios[0] * total
    removed = [[set(), set()] for _ in bl]
    size = [[b.n_units, b.n_channels] for b in bl]
    done = 0
    for _value, cost, li, kind, j in entries:
        if done >= budget - cost / 2:
            break
        if size[li][kind] - len(removed[li][kind]) <= 1:  # every layer keeps one head and one channel
            continue
        removed[li][kind].add(j)
        done += cost
    for li, b in enumerate(bl):
        keep_u.append(torch.tensor([u for u in range(b.n_units) if u not in removed[li][0]], dtype=torch.long))
        keep_c.append(torch.tensor([c for c in range(b.n_channels) if c not in removed[li][1]], dtype=torch.long))
    return Plan(keep_u, keep_c)


def _standardise(s: torch.Tensor) -> torch.Tensor:
    s = s.double()
    return (s - s.mean()) / s.std().clamp_min(1e-12) if len(s) > 1 else s * 0


def _removed(n: int, keep: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(n, dtype=torch.bool)
    mask[keep] = False
    return mask.nonzero().flatten()


@torch.no_grad()
def apply_plan(model, bl: list[Block], plan: Plan, calibration, method: str, compensate: bool,
               dense: dict, cfg: PruneConfig) -> None:
    """Compensate (numerical) or bias-correct (FLAP) layer by layer, then remove the units."""
    for i in progress(range(len(bl)), desc=f"prune[{method}]"):
        b = bl[i]
        gone_units = _removed(b.n_units, plan.keep_units[i])
        gone_channels = _removed(b.n_channels, plan.keep_channels[i])
        gone_attn = (torch.cat([b.unit_channels(int(u)) for u in gone_units]) if len(gone_units)
                     else torch.empty(0, dtype=torch.long))
        if compensate and method == "numerical" and (len(gone_attn) or len(gone_channels)):
            stats = collect(model, bl, [i], calibration, cfg.batch_size)
            for site, gone in (("attn", gone_attn), ("mlp", gone_channels)):
                if len(gone):
                    m = b.site(site)
                    set_out_weight(m, compensated_weight(stats[(i, site)].gram, out_weight(m).detach(),
                                                         gone, cfg.compensation).to(m.weight.device))
        if method == "flap":
            for site, gone in (("attn", gone_attn), ("mlp", gone_channels)):
                if len(gone):
                    add_output_bias(b, site, baselines.flap_bias(b, site, dense[(i, site)], gone))
        shrink_block(b, plan.keep_units[i], plan.keep_channels[i])


def prune(model: nn.Module, calibration: torch.Tensor, ratio: float | Sequence[float], method: str = "numerical",
          compensate: bool = True, config: PruneConfig = PruneConfig()) -> nn.Module:
    """Prune `model` in place and return it (see module doc); invalid input raises before any change.

    `ratio` is the fraction of attention+MLP weights removed (global scope), or of each layer's
    heads and channels (scope "layer", where a list gives one ratio per layer).
    """
    ratios = check_inputs(model, calibration, ratio, method, config.scope)
    start = time.perf_counter()
    bl = blocks(model)
    dense_sizes = record_sizes(model)["dense"]
    scores, dense = score_units(model, bl, calibration, method, ratios, config)
    plan = allocate(bl, scores, ratios, config.scope, method)
    if method == "flap" and family(model) == "llama" and model.config.model_type != "llama":
        method_apply = "flap-nobias"  # Mistral / Qwen2 have no bias slot on o_proj / down_proj
    else:
        method_apply = method
    apply_plan(model, bl, plan, calibration, method_apply, compensate, dense, config)
    record_sizes(model, dense=dense_sizes, extra={
        "method": method, "compensate": bool(compensate and method == "numerical"),
        "ratio": list(ratios) if isinstance(ratio, Sequence) else float(ratio), "scope": config.scope,
        "calibration_shape": list(calibration.shape), "prune_seconds": round(time.perf_counter() - start, 3)})
    return model
