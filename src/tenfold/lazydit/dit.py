"""LazyDiT attached to a diffusers DiT: hooks on every block's MHSA (`attn1`) and feedforward (`ff`),
a step-aware controller that owns the per-module caches, and a DDIM pipeline with a threshold knob.

The hooks use diffusers' own `HookRegistry` (the mechanism behind `enable_cache`), so the library's
source and the model's weights are untouched; `LazyController.detach()` restores the plain model.
Any model whose `transformer_blocks` each hold an `attn1` and an `ff` module works
(`DiTTransformer2DModel`, PixArt-style blocks); the module input (first positional argument) is the
adaLN-modulated hidden state Z_t that the lazy learning layer reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import torch

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.lazydit.gates import KINDS, check_threshold, lazy_mix

HOOK_NAME = "tenfold_lazydit"
MODULES = {"attn": "attn1", "mlp": "ff"}
MODES = ("record", "plain", "soft", "hard")


class SkipPolicy(Protocol):
    """Anything that says how likely a module is to be computed: LazyGates, a static schedule, L2C."""

    num_steps: int
    num_layers: int

    def keep_probability(self, kind: str, step: int, layer: int, z: torch.Tensor) -> torch.Tensor: ...


def dit_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's transformer blocks, checked to have the MHSA and feedforward modules LazyDiT gates."""
    blocks = getattr(model, "transformer_blocks", None)
    if not isinstance(blocks, torch.nn.ModuleList) or len(blocks) == 0:
        raise UnsupportedError(f"{type(model).__name__} has no `transformer_blocks`: LazyDiT needs a diffusers "
                               "DiT-style model (e.g. DiTTransformer2DModel)")
    for i, block in enumerate(blocks):
        for name in MODULES.values():
            if not isinstance(getattr(block, name, None), torch.nn.Module):
                raise UnsupportedError(f"block {i} ({type(block).__name__}) has no `{name}` module: its blocks do not "
                                       "match the DiT block (MHSA `attn1` + feedforward `ff`) that LazyDiT gates")
    return list(blocks)


def _hook_base():
    from diffusers.hooks import HookRegistry, ModelHook

    return HookRegistry, ModelHook


@dataclass
class SkipStats:
    """Per-sample module calls and how many were served from the cache."""

    calls: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    skipped: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    gate_calls: int = 0  # per-sample gate evaluations (each costs tokens x dim MACs)

    @property
    def skip_fraction(self) -> float:
        total = sum(self.calls.values())
        return sum(self.skipped.values()) / total if total else 0.0

    def merge(self, other: SkipStats) -> None:
        for k in KINDS:
            self.calls[k] += other.calls[k]
            self.skipped[k] += other.skipped[k]
        self.gate_calls += other.gate_calls


class LazyController:
    """Owns the caches and the decision rule; `step` is the sampling-step index set by the pipeline.

    Modes: `record` computes every module and stores its output; `plain` computes and leaves the cache
    alone; `soft` mixes computed and cached outputs with s (training); `hard` skips when s < threshold
    (inference). `force[kind]` = "compute" or "reuse" overrides the policy in `hard` mode.
    """

    def __init__(self, model: torch.nn.Module, policy: SkipPolicy | None = None, threshold: float = 0.5):
        self.blocks = dit_blocks(model)
        self.model = model
        self.policy = policy
        self.threshold = check_threshold(threshold)
        if policy is not None and policy.num_layers != len(self.blocks):
            raise InputError(f"the policy has {policy.num_layers} layers but the DiT has {len(self.blocks)} blocks: "
                             "train gates for this model")
        self.mode = "hard"
        self.step = 0
        self.force: dict[str, str | None] = {k: None for k in KINDS}
        self.cache: dict[tuple[int, str], torch.Tensor] = {}
        self.scores: dict[str, list[torch.Tensor]] = {k: [] for k in KINDS}
        self.stats = SkipStats()
        self._attach()

    def _attach(self) -> None:
        registry_cls, hook_cls = _hook_base()
        controller = self

        class LazyHook(hook_cls):
            def __init__(self, layer: int, kind: str):
                super().__init__()
                self.layer, self.kind = layer, kind

            def new_forward(self, module, *args, **kwargs):
                return controller._forward(self.layer, self.kind, self.fn_ref.original_forward, args, kwargs)

        for layer, block in enumerate(self.blocks):
            for kind, name in MODULES.items():
                registry = registry_cls.check_if_exists_or_initialize(getattr(block, name))
                if registry.get_hook(HOOK_NAME) is not None:
                    raise InputError("this DiT already has LazyDiT hooks attached: call .detach() on the old controller")
                registry.register_hook(LazyHook(layer, kind), HOOK_NAME)

    def detach(self) -> None:
        """Remove the hooks: the model is the plain DiT again."""
        for block in self.blocks:
            for name in MODULES.values():
                registry = getattr(getattr(block, name), "_diffusers_hook", None)
                if registry is not None:
                    registry.remove_hook(HOOK_NAME, recurse=False)
        self.reset()

    def reset(self) -> None:
        """Forget the caches and scores (call before each new trajectory)."""
        self.cache.clear()
        self.scores = {k: [] for k in KINDS}

    def _forward(self, layer: int, kind: str, original, args: tuple, kwargs: dict) -> torch.Tensor:
        key = (layer, kind)
        cached = self.cache.get(key)
        if self.mode == "plain":
            return original(*args, **kwargs)
        batch = args[0].shape[0]
        self.stats.calls[kind] += batch
        if self.mode == "record" or cached is None:  # the first step always computes
            out = original(*args, **kwargs)
            self.cache[key] = out.detach()
            return out
        z = args[0]
        if self.mode == "soft":
            s = self.policy.keep_probability(kind, self.step, layer, z)
            self.scores[kind].append(s)
            out = lazy_mix(s, original(*args, **kwargs), cached)
            self.cache[key] = out  # kept in the graph: a multi-step rollout trains through reused outputs
            return out
        keep = self._keep(kind, layer, z)
        n_keep = int(keep.sum())
        self.stats.skipped[kind] += batch - n_keep
        if n_keep == batch:
            out = original(*args, **kwargs)
        elif n_keep == 0:
            out = cached  # exactly the previous step's output
        else:
            out = cached.clone()
            out[keep] = original(z[keep], *args[1:], **kwargs)
        self.cache[key] = out
        return out

    def _keep(self, kind: str, layer: int, z: torch.Tensor) -> torch.Tensor:
        force = self.force[kind]
        if force == "compute" or (force is None and self.policy is None):
            return torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
        if force == "reuse":
            return torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
        self.stats.gate_calls += z.shape[0]
        return self.policy.keep_probability(kind, self.step, layer, z) >= self.threshold


def check_scheduler(scheduler) -> None:
    from diffusers import DDIMScheduler

    if not isinstance(scheduler, DDIMScheduler):
        raise UnsupportedError(f"LazyDiT samples with DDIM (its gates are trained per DDIM step); got "
                               f"{type(scheduler).__name__}: pass DDIMScheduler.from_config(scheduler.config)")


def check_images(images: torch.Tensor, model: torch.nn.Module, what: str = "images") -> None:
    """Images must be (n, in_channels, sample_size, sample_size) to match the DiT."""
    cfg = model.config
    expected = (cfg.in_channels, cfg.sample_size, cfg.sample_size)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise InputError(f"{what} have shape {tuple(images.shape)} but the DiT expects (n, {expected[0]}, "
                         f"{expected[1]}, {expected[2]}): resize them to the model's sample_size")


@dataclass
class LazyOutput:
    """Samples in [0, 1] (n, C, H, W), the skip statistics, and the wall time of the denoising loop."""

    images: torch.Tensor
    stats: SkipStats
    seconds: float
    num_inference_steps: int


class LazyDiTPipeline:
    """Class-conditional DDIM sampling (eta = 0) with optional lazy skipping, diffusers-style.

    `pipe(class_labels, num_inference_steps=20, threshold=0.5, policy=gates)`; `policy=None` is plain DDIM.
    """

    def __init__(self, model: torch.nn.Module, scheduler):
        check_scheduler(scheduler)
        dit_blocks(model)
        self.model, self.scheduler = model.eval(), scheduler

    @torch.no_grad()
    def __call__(self, class_labels: torch.Tensor, num_inference_steps: int = 20, policy: SkipPolicy | None = None,
                 threshold: float = 0.5, generator: torch.Generator | None = None, batch_size: int = 500,
                 force: dict[str, str | None] | None = None) -> LazyOutput:
        if num_inference_steps < 1:
            raise InputError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if policy is not None and policy.num_steps != num_inference_steps:
            raise InputError(f"the gates were trained for {policy.num_steps} DDIM steps, not {num_inference_steps}: "
                             "sample with that many steps or train gates for this step count")
        cfg = self.model.config
        labels = torch.as_tensor(class_labels, dtype=torch.long)
        if labels.ndim != 1 or (labels < 0).any() or (labels >= cfg.num_embeds_ada_norm).any():
            raise InputError(f"class labels must be a 1-D list of ints in [0, {cfg.num_embeds_ada_norm}), got {class_labels!r}")
        device = next(self.model.parameters()).device
        noise = torch.randn((len(labels), cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=generator)
        ctl = LazyController(self.model, policy, threshold)
        ctl.force.update(force or {})
        out = []
        try:
            start = time.perf_counter()
            for i in range(0, len(labels), batch_size):
                out.append(self._denoise(ctl, noise[i: i + batch_size].to(device), labels[i: i + batch_size].to(device),
                                         num_inference_steps))
            seconds = time.perf_counter() - start
        finally:
            ctl.detach()
        images = ((torch.cat(out) + 1) / 2).clamp(0, 1).cpu()
        return LazyOutput(images, ctl.stats, seconds, num_inference_steps)

    def _denoise(self, ctl: LazyController, x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.Tensor:
        self.scheduler.set_timesteps(steps)
        ctl.reset()
        ctl.mode = "hard"
        for i, t in enumerate(self.scheduler.timesteps):
            ctl.step = i
            eps = self.model(x, timestep=t.expand(len(x)).to(x.device), class_labels=y).sample
            x = self.scheduler.step(eps, t, x, eta=0.0).prev_sample
        return x


@dataclass(frozen=True)
class MacsProfile:
    """Per-sample multiply-accumulates of one DiT forward and of each gated module (from torch's counter)."""

    full: float
    attn: float  # one MHSA module
    mlp: float  # one feedforward module
    gate: float  # one lazy learning layer (tokens x dim)
    num_layers: int

    def used(self, stats: SkipStats, num_samples: int, steps: int) -> float:
        """MACs per sample of a run: full forwards, minus skipped modules, plus the gates evaluated."""
        saved = stats.skipped["attn"] * self.attn + stats.skipped["mlp"] * self.mlp
        return (num_samples * steps * self.full - saved + stats.gate_calls * self.gate) / num_samples


def _cpu_sdpa_flops(q, k, v, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of CPU fused attention (torch's counter has no formula for it): QK^T and PV, 2 FLOPs per MAC."""
    batch, heads, s_q, dim = q
    return 4 * batch * heads * s_q * k[-2] * dim


@torch.no_grad()
def profile_macs(model: torch.nn.Module) -> MacsProfile:
    """Count MACs with torch.utils.flop_counter (matmuls and attention; FLOPs / 2) for one sample."""
    from torch.utils.flop_counter import FlopCounterMode

    custom = {}
    if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        custom[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flops

    cfg = model.config
    blocks = dit_blocks(model)
    x = torch.zeros(1, cfg.in_channels, cfg.sample_size, cfg.sample_size, device=next(model.parameters()).device)
    t = torch.tensor([500], device=x.device)
    y = torch.tensor([0], device=x.device)
    ctl = LazyController(model)
    try:
        ctl.mode = "record"
        model(x, timestep=t, class_labels=y)

        def count(force: dict) -> float:
            ctl.mode = "hard"
            ctl.force = {k: None for k in KINDS} | force
            with FlopCounterMode(display=False, custom_mapping=custom) as counter:
                model(x, timestep=t, class_labels=y)
            return counter.get_total_flops() / 2

        full = count({})
        no_attn = count({"attn": "reuse"})
        no_mlp = count({"mlp": "reuse"})
    finally:
        ctl.detach()
    tokens = (cfg.sample_size // cfg.patch_size) ** 2
    dim = blocks[0].attn1.to_q.in_features if hasattr(blocks[0].attn1, "to_q") else cfg.num_attention_heads * cfg.attention_head_dim
    n = len(blocks)
    return MacsProfile(full=full, attn=(full - no_attn) / n, mlp=(full - no_mlp) / n, gate=float(tokens * dim), num_layers=n)
