"""LazyDiT attached to a diffusers DiT: hooks on every block's MHSA (`attn1`) and feedforward (`ff`),
a step-aware controller that owns the per-module caches, and `LazyDiTPipeline`, a drop-in for
diffusers' `DiTPipeline` (latents, VAE decoding, learned variance, classifier-free guidance).

The hooks use diffusers' own `HookRegistry` (the mechanism behind `enable_cache`), so the library's
source and the model's weights are untouched; `LazyController.detach()` restores the plain model.
Any model whose `transformer_blocks` each hold an `attn1` and an `ff` module works
(`DiTTransformer2DModel`, PixArt-style blocks); the module input (first positional argument) is the
adaLN-modulated hidden state Z_t that the lazy learning layer reads, and the cached tensor is the
module output before the adaLN-Zero gate multiplies it, as in the authors' code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.lazydit.gates import KINDS, check_threshold, lazy_mix

HOOK_NAME = "tenfold_lazydit"
MODULES = {"attn": "attn1", "mlp": "ff"}
MODES = ("record", "plain", "soft", "hard")
OUTPUT_TYPES = ("pil", "np", "pt")


class SkipPolicy(Protocol):
    """Anything that says how likely a module is to be computed: LazyGates, a static schedule, L2C.

    `is_active(step)`: the policy decides at this step (elsewhere every module computes);
    `gate_cost`: each decision runs a lazy learning layer (tokens x dim MACs), not a table lookup.
    """

    num_steps: int
    num_layers: int
    gate_cost: bool

    def is_active(self, step: int) -> bool: ...

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


def inner_dim(model: torch.nn.Module) -> int:
    """Width of the hidden states the lazy learning layers read."""
    attn = dit_blocks(model)[0].attn1
    if hasattr(attn, "to_q"):
        return attn.to_q.in_features
    return model.config.num_attention_heads * model.config.attention_head_dim


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


class LazyController:
    """Owns the caches and the decision rule; `step` is the sampling-step index set by the pipeline.

    Modes: `record` computes every module and stores its output; `plain` computes and leaves the cache
    alone; `soft` mixes computed and cached outputs with s (training); `hard` skips when s < threshold
    (inference). `force[kind]` = "compute" or "reuse" overrides the policy in `hard` mode. With
    `paired=True` the batch is classifier-free guidance's [conditional; unconditional] halves and a
    sample's two halves share one decision: s is averaged over the pair.
    """

    def __init__(self, model: torch.nn.Module, policy: SkipPolicy | None = None, threshold: float = 0.5,
                 paired: bool = False):
        self.blocks = dit_blocks(model)
        self.policy = policy
        self.threshold = check_threshold(threshold)
        self.paired = paired
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

    def _decides(self) -> bool:
        return self.policy is not None and self.policy.is_active(self.step)

    def _forward(self, layer: int, kind: str, original, args: tuple, kwargs: dict) -> torch.Tensor:
        key = (layer, kind)
        cached = self.cache.get(key)
        if self.mode == "plain":
            return original(*args, **kwargs)
        batch = args[0].shape[0]
        self.stats.calls[kind] += batch
        forced = self.mode == "hard" and self.force[kind] is not None
        if self.mode == "record" or cached is None or not (forced or self._decides()):
            out = original(*args, **kwargs)  # the first step, and steps without a gate, always compute
            self.cache[key] = out if self.mode == "soft" else out.detach()
            return out
        z = args[0]
        if self.mode == "soft":
            s = self.policy.keep_probability(kind, self.step, layer, z)
            self.scores[kind].append(s)
            out = lazy_mix(s, original(*args, **kwargs), cached)
            self.cache[key] = out  # kept in the graph: a rollout trains through reused outputs
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
        if force is not None:
            return torch.full((z.shape[0],), force == "compute", dtype=torch.bool, device=z.device)
        if self.policy.gate_cost:
            self.stats.gate_calls += z.shape[0]
        s = self.policy.keep_probability(kind, self.step, layer, z)
        if self.paired:  # one decision per sample for its conditional and unconditional halves
            half = s.shape[0] // 2
            shared = (s[:half] + s[half:]) / 2
            s = torch.cat([shared, shared])
        return s >= self.threshold


def check_scheduler(scheduler) -> None:
    from diffusers import DDIMScheduler

    if not isinstance(scheduler, DDIMScheduler):
        raise UnsupportedError(f"LazyDiT samples with DDIM (its gates are trained per DDIM step); got "
                               f"{type(scheduler).__name__}: pass DDIMScheduler.from_config(scheduler.config)")


def check_latents(x: torch.Tensor, model: torch.nn.Module, what: str = "training data") -> None:
    """x must be (n, in_channels, sample_size, sample_size) to match the DiT."""
    cfg = model.config
    expected = (cfg.in_channels, cfg.sample_size, cfg.sample_size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise InputError(f"{what} has shape {tuple(x.shape)} but the DiT expects (n, {expected[0]}, {expected[1]}, "
                         f"{expected[2]}): give images at the pipeline's resolution")


def null_class(model: torch.nn.Module) -> int:
    """The label of the unconditional (dropped) class: the extra row of the label embedding table."""
    n = model.config.num_embeds_ada_norm
    table = getattr(getattr(getattr(dit_blocks(model)[0].norm1, "emb", None), "class_embedder", None),
                    "embedding_table", None)
    if table is None or table.num_embeddings <= n:
        raise InputError("this DiT has no null class (it was trained without label dropout), so it cannot be sampled "
                         "with classifier-free guidance: use guidance_scale 1")
    return n


@dataclass
class LazyPipelineOutput:
    """Images like `DiTPipeline`'s, plus what the lazy sampler saved and what it cost.

    `macs` is the transformer's multiply-accumulates per image (both guidance halves, gates included);
    `macs_ratio` is relative to computing every module at the same steps and guidance; `seconds` is the
    denoising loop's wall time (VAE decoding excluded).
    """

    images: Any
    skip_fraction: float
    macs: float
    macs_ratio: float
    stats: SkipStats
    seconds: float
    num_inference_steps: int


class LazyDiTPipeline:
    """Class-conditional DDIM sampling with LazyDiT skipping, step for step like diffusers' `DiTPipeline`.

    `LazyDiTPipeline.from_pipe(dit_pipeline)(class_labels, num_inference_steps, guidance_scale, generator,
    output_type, gates=gates, threshold=0.5)`; with `gates=None` every module computes and the images
    equal the stock pipeline's. `vae=None` is a pixel-space DiT (its samples are the images).
    """

    def __init__(self, transformer: torch.nn.Module, scheduler, vae: torch.nn.Module | None = None):
        check_scheduler(scheduler)
        dit_blocks(transformer)
        self.transformer, self.scheduler, self.vae = transformer.eval(), scheduler, vae
        if vae is not None:
            vae.eval()
        self._macs: MacsProfile | None = None

    @classmethod
    def from_pipe(cls, pipe) -> LazyDiTPipeline:
        """Share the modules of a diffusers `DiTPipeline` (transformer, VAE, scheduler)."""
        missing = [name for name in ("transformer", "scheduler", "vae") if getattr(pipe, name, None) is None]
        if missing:
            raise UnsupportedError(f"{type(pipe).__name__} has no {', '.join(missing)}: from_pipe takes a diffusers "
                                   "DiTPipeline (transformer + VAE + scheduler)")
        return cls(pipe.transformer, pipe.scheduler, pipe.vae)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> LazyDiTPipeline:
        """A `save_pretrained` DiTPipeline folder (model_index.json). A folder saved with another scheduler
        (the DiT release ships DDIM; users often save DPM-Solver) is sampled with DDIM built from that
        scheduler's noise schedule, as gates are trained per DDIM step."""
        from diffusers import DDIMScheduler, DiTPipeline
        from diffusers.utils import logging

        folder = Path(folder)
        if not (folder / "model_index.json").is_file():
            raise InputError(f"{folder} is not a saved DiTPipeline (model_index.json missing): pass a folder written by "
                             "DiTPipeline.save_pretrained, or --model for a bare DiT transformer folder")
        shown = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()  # a loading bar per component is noise in a command's output
        try:
            pipe = DiTPipeline.from_pretrained(folder)
            if not isinstance(pipe.scheduler, DDIMScheduler):
                pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
            return cls.from_pipe(pipe)
        finally:
            if shown:
                logging.enable_progress_bar()

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def macs(self) -> MacsProfile:
        if self._macs is None:
            self._macs = profile_macs(self.transformer)
        return self._macs

    def labels(self, class_labels) -> torch.Tensor:
        n = self.transformer.config.num_embeds_ada_norm
        try:
            labels = torch.as_tensor(class_labels, dtype=torch.long).reshape(-1)
        except (TypeError, ValueError, RuntimeError, OverflowError) as err:  # torch: "Overflow when unpacking long"
            raise InputError(f"class labels must be ints in [0, {n}), got {class_labels!r}") from err
        if labels.numel() == 0 or (labels < 0).any() or (labels >= n).any():
            raise InputError(f"class labels must be a non-empty list of ints in [0, {n}), got {class_labels!r}")
        return labels

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None,
               batch_size: int = 64) -> torch.Tensor:
        """Images in [0, 1] (n, C, H, W) -> the DiT's x_0: VAE latents x scaling factor (the authors'
        `vae.encode(x).latent_dist.sample() * 0.18215`), or [-1, 1] pixels without a VAE."""
        x = images.float() * 2 - 1
        if self.vae is not None:
            parts = []
            for i in range(0, len(x), batch_size):
                dist = self.vae.encode(x[i: i + batch_size].to(self.vae.device, self.vae.dtype)).latent_dist
                parts.append(dist.sample(generator=generator).float().cpu() * self.vae.config.scaling_factor)
            x = torch.cat(parts)
        check_latents(x, self.transformer, "the encoded images")
        return x

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """The DiT's samples -> images in [0, 1], as DiTPipeline post-processes them."""
        if self.vae is None:
            return (latents / 2 + 0.5).clamp(0, 1)
        latents = 1 / self.vae.config.scaling_factor * latents
        samples = self.vae.decode(latents).sample
        return (samples / 2 + 0.5).clamp(0, 1)

    @torch.no_grad()
    def __call__(self, class_labels, num_inference_steps: int = 50, guidance_scale: float = 4.0,
                 generator: torch.Generator | list[torch.Generator] | None = None, output_type: str = "pil",
                 gates: SkipPolicy | None = None, threshold: float = 0.5, force: dict[str, str | None] | None = None,
                 batch_size: int | None = None) -> LazyPipelineOutput:
        from diffusers.utils.torch_utils import randn_tensor

        from tenfold.core.runtime import Timer

        if num_inference_steps < 1:
            raise InputError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if output_type not in OUTPUT_TYPES:
            raise InputError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        if gates is not None and gates.num_steps != num_inference_steps:
            raise InputError(f"the gates were trained for {gates.num_steps} DDIM steps, not {num_inference_steps}: "
                             "sample with that many steps or train gates for this step count")
        check_threshold(threshold)
        labels = self.labels(class_labels)
        guided = guidance_scale > 1
        null = null_class(self.transformer) if guided else None
        cfg = self.transformer.config
        latents = randn_tensor((len(labels), cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=generator,
                               device=self.device, dtype=self.transformer.dtype)
        ctl = LazyController(self.transformer, gates, threshold, paired=guided) if gates is not None or force else None
        if ctl is not None:
            ctl.force.update(force or {})
        step = batch_size or len(labels)
        outs = []
        try:
            with Timer(sync_cuda=self.device.type == "cuda") as timer:
                for i in range(0, len(labels), step):
                    outs.append(self._denoise(ctl, latents[i: i + step], labels[i: i + step].to(self.device),
                                              num_inference_steps, guidance_scale, null))
        finally:
            if ctl is not None:
                ctl.detach()
        images = torch.cat([self.decode(x) for x in outs])
        stats = ctl.stats if ctl is not None else SkipStats()
        rows = len(labels) * (2 if guided else 1)
        per_row = self.macs.used(stats, rows, num_inference_steps)
        return LazyPipelineOutput(_postprocess(images, output_type), stats.skip_fraction, per_row * rows / len(labels),
                                  per_row / (self.macs.full * num_inference_steps), stats, timer.seconds,
                                  num_inference_steps)

    def _denoise(self, ctl: LazyController | None, latents: torch.Tensor, labels: torch.Tensor, steps: int,
                 guidance_scale: float, null: int | None) -> torch.Tensor:
        """DiTPipeline's loop (diffusers 0.3x-0.4x), with the controller told the step index."""
        guided = null is not None
        channels = self.transformer.config.in_channels
        model_input = torch.cat([latents] * 2) if guided else latents
        labels_input = torch.cat([labels, torch.full_like(labels, null)]) if guided else labels
        if ctl is not None:
            ctl.reset()
            ctl.mode = "hard"
        self.scheduler.set_timesteps(steps)
        for i, t in enumerate(self.scheduler.timesteps):
            if ctl is not None:
                ctl.step = i
            if guided:
                half = model_input[: len(model_input) // 2]
                model_input = torch.cat([half, half], dim=0)
            model_input = self.scheduler.scale_model_input(model_input, t)
            timesteps = t[None].to(model_input.device).expand(model_input.shape[0])
            noise_pred = self.transformer(model_input, timestep=timesteps, class_labels=labels_input).sample
            if guided:
                eps, rest = noise_pred[:, :channels], noise_pred[:, channels:]
                cond_eps, uncond_eps = torch.split(eps, len(eps) // 2, dim=0)
                half_eps = uncond_eps + guidance_scale * (cond_eps - uncond_eps)
                noise_pred = torch.cat([torch.cat([half_eps, half_eps], dim=0), rest], dim=1)
            model_output = split_variance(noise_pred, channels)
            model_input = self.scheduler.step(model_output, t, model_input).prev_sample
        return model_input.chunk(2, dim=0)[0] if guided else model_input


def split_variance(model_output: torch.Tensor, channels: int) -> torch.Tensor:
    """The noise prediction of a DiT that may also predict its variance (out_channels = 2 x in_channels)."""
    if model_output.shape[1] // 2 == channels:
        return model_output[:, :channels]
    return model_output


def _postprocess(images: torch.Tensor, output_type: str):
    if output_type == "pt":
        return images
    array = images.cpu().permute(0, 2, 3, 1).float().numpy()
    if output_type == "np":
        return array
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.numpy_to_pil(array)


@dataclass(frozen=True)
class MacsProfile:
    """Per-sample multiply-accumulates of one DiT forward and of each gated module (from torch's counter)."""

    full: float
    attn: float  # one MHSA module
    mlp: float  # one feedforward module
    gate: float  # one lazy learning layer (tokens x dim)
    num_layers: int

    def used(self, stats: SkipStats, rows: int, steps: int) -> float:
        """MACs per batch row of a run: full forwards, minus skipped modules, plus the gates evaluated."""
        saved = stats.skipped["attn"] * self.attn + stats.skipped["mlp"] * self.mlp
        return (rows * steps * self.full - saved + stats.gate_calls * self.gate) / rows


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
    param = next(model.parameters())
    x = torch.zeros(1, cfg.in_channels, cfg.sample_size, cfg.sample_size, device=param.device, dtype=param.dtype)
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

        full = count({"attn": "compute", "mlp": "compute"})
        no_attn = count({"attn": "reuse", "mlp": "compute"})
        no_mlp = count({"attn": "compute", "mlp": "reuse"})
    finally:
        ctl.detach()
    tokens = (cfg.sample_size // cfg.patch_size) ** 2
    n = len(blocks)
    return MacsProfile(full=full, attn=(full - no_attn) / n, mlp=(full - no_mlp) / n, gate=float(tokens * inner_dim(model)),
                       num_layers=n)
