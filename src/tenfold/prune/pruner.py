"""`prune(model, calibration, ratio, method, compensate)`: score, allocate, compensate, remove.

1. Score every attention unit and MLP channel (the numerical score of Sec. 3.2 or a baseline) from
   the dense model's calibration statistics, in one pass over the layers (`score_model`).
2. Allocate (`allocate`) the removals across layers, with the score's values:
   - "alpha": the paper's global ranking (Sec. 3.3, eq. 8): every layer's channel scores and its
     unit scores times alpha sorted together, lowest removed first;
   - "standardised": FLAP's global ranking of each module's standardised scores;
   - "uniform": every layer loses the same share of its weights (its units rounded, its channels
     making up the rest), ranked within the layer.
   Every allocation removes lowest-first until `ratio` of the attention+MLP weights is gone, so one
   ratio means one weight budget whatever the score and the allocation.
3. Apply (`apply_plan`), layer by layer in one pass: with compensation, the statistics of layer l
   come from the calibration inputs propagated through the already pruned layers < l; attention is
   compensated (Sec. 3.4) and shrunk first, then the MLP's statistics are taken with the pruned
   attention in place; FLAP's own recipe adds its bias compensation instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.core.progress import progress
from tenfold.prune import baselines
from tenfold.prune.calibration import LayerInputs, SiteStats, site_statistics
from tenfold.prune.compensate import CompensationConfig, compensated_weight
from tenfold.prune.offload import execution_device, is_dispatched, materialised
from tenfold.prune.scores import NumericalConfig, head_scores, numerical_score
from tenfold.prune.surgery import (
    Block,
    add_output_bias,
    block_of,
    blocks,
    decoder_layers,
    family,
    has_bias_slot,
    out_weight,
    record_sizes,
    set_out_weight,
    shrink_attention,
    shrink_mlp,
)

METHODS = ("numerical", "magnitude", "wanda-sp", "flap", "taylor")
SCORES = (*METHODS, "numerical-clip")  # numerical-clip: NumericalConfig(clip=True), ours
ALLOCATIONS = ("alpha", "standardised", "uniform")
WEIGHT_ONLY = {"magnitude", "taylor"}  # scores from weights (and gradients) alone
OWN_ALLOCATION = {"numerical": "alpha"}  # every baseline: FLAP's standardised global ranking

Scores = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (unit scores, channel scores)


@dataclass(frozen=True)
class PruneConfig:
    """Everything that changes the numbers besides method, ratio and calibration."""

    allocation: str | None = None  # None: the method's own (numerical: alpha, eq. 8; baselines: FLAP's)
    numerical: NumericalConfig = field(default_factory=NumericalConfig)
    compensation: CompensationConfig = field(default_factory=CompensationConfig)
    batch_size: int = 8
    device: str | None = None  # compute device; None: where the first decoder layer computes


@dataclass
class Plan:
    """Which attention units and MLP channels each layer keeps."""

    keep_units: list[torch.Tensor]
    keep_channels: list[torch.Tensor]


@dataclass
class ScoreTable:
    """Scores of the dense model: `scores[(name, key)]` per layer, plus FLAP's dense input means."""

    scores: dict[tuple[str, object], Scores]
    means: dict[tuple[int, str], torch.Tensor]
    layer_runs: int


def check_inputs(model: nn.Module, calibration: torch.Tensor, ratio, method: str, allocation: str) -> list[float]:
    """Validate everything before the model is touched; return one ratio per layer."""
    family(model)
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if allocation not in ALLOCATIONS:
        raise InputError(f"unknown allocation {allocation!r}: choose one of {', '.join(ALLOCATIONS)}")
    n_layers = len(decoder_layers(model))
    per_layer = isinstance(ratio, Sequence)
    ratios = [float(r) for r in ratio] if per_layer else [float(ratio)] * n_layers
    if len(ratios) != n_layers:
        raise InputError(f"{len(ratios)} per-layer ratios given for a model with {n_layers} layers")
    if per_layer and allocation != "uniform":
        raise InputError("per-layer ratios need allocation='uniform'")
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
    if method == "taylor" and is_dispatched(model):
        raise UnsupportedError("taylor needs a full backward pass; it is not supported on a model dispatched with "
                               "device_map/offload: load the model on one device, or use another method")
    return ratios


def compute_device(model: nn.Module, config: PruneConfig) -> torch.device:
    if config.device is not None:
        from tenfold.core.runtime import pick_device

        return pick_device(config.device)
    return execution_device(model, decoder_layers(model)[0])


def _layer_scores(name: str, b: Block, sa: SiteStats | None, sm: SiteStats | None, ratio: float,
                  cfg: PruneConfig) -> tuple[torch.Tensor, torch.Tensor]:
    if name in ("numerical", "numerical-clip"):
        ncfg = replace(cfg.numerical, clip=True) if name == "numerical-clip" else cfg.numerical
        za = numerical_score(sa.gram, out_weight(b.attn_out).detach(), ratio, ncfg)
        zm = numerical_score(sm.gram, out_weight(b.mlp_out).detach(), ratio, ncfg)
        return head_scores(za, b.unit_width), zm
    if name == "magnitude":
        return baselines.magnitude_scores(b)
    if name == "wanda-sp":
        return baselines.wanda_sp_scores(b, sa, sm)
    if name == "flap":
        return baselines.flap_scores(b, sa, sm)
    return baselines.taylor_scores(b)


Visit = Callable[[int, Block, SiteStats, SiteStats], None]


@torch.no_grad()
def _dense_pass(model, calibration, names, ratio_sets, cfg: PruneConfig, visit: Visit | None) -> ScoreTable:
    layers = decoder_layers(model)
    device = compute_device(model, cfg)
    inputs = LayerInputs.capture(model, layers, calibration, cfg.batch_size, device)
    fam = family(model)
    table: dict[tuple[str, object], Scores] = {(n, k): [] for n in names for k in ratio_sets}
    means = {}
    for i, layer in enumerate(progress(layers, desc="scores")):
        with materialised(layer, device, modified=False):
            b = block_of(layer, fam)
            sa, sm = site_statistics(inputs, b, i, advance=i < len(layers) - 1)
            for n in names:
                if n in ("numerical", "numerical-clip"):
                    for k, rs in ratio_sets.items():
                        table[(n, k)].append(_layer_scores(n, b, sa, sm, rs[i], cfg))
                else:
                    s = _layer_scores(n, b, sa, sm, 0.0, cfg)
                    for k in ratio_sets:
                        table[(n, k)].append(s)
            means[(i, "attn")], means[(i, "mlp")] = sa.mean.cpu(), sm.mean.cpu()
            if visit is not None:
                visit(i, b, sa, sm)
    return ScoreTable(table, means, inputs.layer_runs)


def score_model(model: nn.Module, calibration: torch.Tensor, names: Sequence[str], ratio_sets: dict,
                config: PruneConfig = PruneConfig(), visit: Visit | None = None) -> ScoreTable:
    """Every requested score of the dense model from one pass over its layers.

    `ratio_sets` maps a key to one ratio per layer (the numerical score's r = (1 - rho) D depends on
    it, eq. 5); other scores are the same for every key. `visit(i, block, attn_stats, mlp_stats)`
    sees each layer's statistics while they are on the device (diagnostics).
    """
    unknown = [n for n in names if n not in SCORES]
    if unknown:
        raise InputError(f"unknown score {unknown[0]!r}: choose from {', '.join(SCORES)}")
    if "taylor" in names:
        baselines.taylor_gradients(model, calibration, config.batch_size)
    try:
        if visit is None and set(names) <= WEIGHT_ONLY:  # no calibration statistics needed
            bl = blocks(model)
            table = {(n, k): [_layer_scores(n, b, None, None, 0.0, config) for b in bl] for n in names for k in ratio_sets}
            return ScoreTable(table, {}, 0)
        return _dense_pass(model, calibration, list(names), ratio_sets, config, visit)
    finally:
        if "taylor" in names:
            model.zero_grad(set_to_none=True)


def allocate(bl: list[Block], scores: Scores, ratios: list[float], allocation: str) -> Plan:
    """Turn scores into the kept units/channels of every layer (lowest scores go first)."""
    if allocation == "uniform":
        return _uniform(bl, scores, ratios)
    entries = []  # (value, cost, layer, kind, index), sorted ascending
    for li, (b, (su, sc)) in enumerate(zip(bl, scores, strict=True)):
        if allocation == "alpha":  # eq. (8): alpha-scaled unit scores beside channel scores
            alpha = b.unit_params() / b.channel_params()
            vu, vc = alpha * su.double(), sc.double()
        else:  # FLAP's global standardisation of each module's scores
            vu, vc = _standardise(su), _standardise(sc)
        entries += [(float(v), b.unit_params(), li, 0, j) for j, v in enumerate(vu.tolist())]
        entries += [(float(v), b.channel_params(), li, 1, j) for j, v in enumerate(vc.tolist())]
    entries.sort(key=lambda e: (e[0], e[2], e[3], e[4]))
    budget = ratios[0] * sum(b.weights() for b in bl)
    removed = [[set(), set()] for _ in bl]
    size = [[b.n_units, b.n_channels] for b in bl]
    done = 0
    for _value, cost, li, kind, j in entries:
        if done >= budget - cost / 2:
            break
        if size[li][kind] - len(removed[li][kind]) <= 1:  # every layer keeps one unit and one channel
            continue
        removed[li][kind].add(j)
        done += cost
    keep_u = [torch.tensor([u for u in range(b.n_units) if u not in removed[li][0]], dtype=torch.long)
              for li, b in enumerate(bl)]
    keep_c = [torch.tensor([c for c in range(b.n_channels) if c not in removed[li][1]], dtype=torch.long)
              for li, b in enumerate(bl)]
    return Plan(keep_u, keep_c)


def _uniform(bl: list[Block], scores: Scores, ratios: list[float]) -> Plan:
    """Each layer loses `ratio` of its weights: round(ratio x units) units, channels for the rest."""
    keep_u, keep_c = [], []
    for b, (su, sc), r in zip(bl, scores, ratios, strict=True):
        nu = min(round(r * b.n_units), b.n_units - 1)
        nc = round((r * b.weights() - nu * b.unit_params()) / b.channel_params())
        nc = max(0, min(nc, b.n_channels - 1))
        keep_u.append(su.argsort(descending=True, stable=True)[: b.n_units - nu].sort().values.cpu())
        keep_c.append(sc.argsort(descending=True, stable=True)[: b.n_channels - nc].sort().values.cpu())
    return Plan(keep_u, keep_c)


def _standardise(s: torch.Tensor) -> torch.Tensor:
    s = s.double()
    return (s - s.mean()) / s.std().clamp_min(1e-12) if len(s) > 1 else s * 0


def _removed(n: int, keep: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(n, dtype=torch.bool)
    mask[keep] = False
    return mask.nonzero().flatten()


@torch.no_grad()
def apply_plan(model: nn.Module, plan: Plan, calibration: torch.Tensor, compensation: str,
               means: dict | None, config: PruneConfig = PruneConfig()) -> int:
    """Remove what `plan` removes, layer by layer, with `compensation` "ls" (Sec. 3.4), "bias"
    (FLAP's, from the dense `means`) or "none". Returns the number of layer runs it took."""
    layers = decoder_layers(model)
    fam = family(model)
    device = compute_device(model, config)
    inputs = LayerInputs.capture(model, layers, calibration, config.batch_size, device) if compensation == "ls" else None
    for i, layer in enumerate(progress(layers, desc="prune")):
        with materialised(layer, device):
            b = block_of(layer, fam)
            gone_units = _removed(b.n_units, plan.keep_units[i])
            gone_channels = _removed(b.n_channels, plan.keep_channels[i])
            gone_attn = (torch.cat([b.unit_channels(int(u)) for u in gone_units]) if len(gone_units)
                         else torch.empty(0, dtype=torch.long))
            if compensation == "ls":
                if len(gone_attn):
                    _compensate(b, "attn", inputs.run(layer, i, [(b.attn_out, True)], advance=False), gone_attn, config)
                shrink_attention(b, plan.keep_units[i])
                if len(gone_channels):
                    _compensate(b, "mlp", inputs.run(layer, i, [(b.mlp_out, True)], advance=False), gone_channels, config)
                shrink_mlp(b, plan.keep_channels[i])
                if i < len(layers) - 1:
                    inputs.run(layer, i)
                continue
            if compensation == "bias":
                for site, gone in (("attn", gone_attn), ("mlp", gone_channels)):
                    if len(gone):
                        add_output_bias(b, site, baselines.flap_bias(b, site, means[(i, site)].to(device), gone))
            shrink_attention(b, plan.keep_units[i])
            shrink_mlp(b, plan.keep_channels[i])
    return inputs.layer_runs if inputs is not None else 0


def _compensate(b: Block, site: str, stats: dict, gone: torch.Tensor, config: PruneConfig) -> None:
    m = b.site(site)
    gram = stats[m].gram
    set_out_weight(m, compensated_weight(gram, out_weight(m).detach(), gone, config.compensation).to(m.weight.device))


def compensation_kind(model: nn.Module, method: str, compensate: bool | None) -> str:
    """"ls" (the paper's, any score), "bias" (FLAP's own recipe) or "none"."""
    if compensate is None:
        if method == "numerical":
            return "ls"
        return "bias" if method == "flap" and has_bias_slot(blocks(model)[0]) else "none"
    return "ls" if compensate else "none"


def prune(model: nn.Module, calibration: torch.Tensor, ratio: float | Sequence[float], method: str = "numerical",
          compensate: bool | None = None, config: PruneConfig = PruneConfig()) -> nn.Module:
    """Prune `model` in place and return it (see module doc); invalid input raises before any change.

    `ratio` is the fraction of attention+MLP weights removed (a list: one per layer, allocation
    "uniform"). `compensate`: None is the method's own recipe (numerical: the paper's least-squares
    compensation; FLAP: its bias compensation where the architecture has a bias slot; other
    baselines: none); True applies the paper's compensation whatever the score; False none.
    """
    allocation = config.allocation or OWN_ALLOCATION.get(method, "standardised")
    ratios = check_inputs(model, calibration, ratio, method, allocation)
    start = time.perf_counter()
    dense_sizes = record_sizes(model)["dense"]
    name = "numerical-clip" if method == "numerical" and config.numerical.clip else method
    table = score_model(model, calibration, [name], {"r": ratios}, config)
    plan = allocate(blocks(model), table.scores[(name, "r")], ratios, allocation)
    kind = compensation_kind(model, method, compensate)
    runs = apply_plan(model, plan, calibration, kind, table.means, config)
    record_sizes(model, dense=dense_sizes, extra={
        "method": name, "compensation": kind, "allocation": allocation,
        "ratio": list(ratios) if isinstance(ratio, Sequence) else float(ratio),
        "calibration_shape": list(calibration.shape), "layer_runs": table.layer_runs + runs,
        "prune_seconds": round(time.perf_counter() - start, 3)})
    return model
