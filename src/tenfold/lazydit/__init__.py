"""LazyDiT: lazy learning for the acceleration of Diffusion Transformers (Shen et al., AAAI 2025, arXiv 2412.12444).

    from diffusers import DiTPipeline
    from tenfold.lazydit import LazyConfig, LazyDiTPipeline, LazyGates, train_gates
    pipe = LazyDiTPipeline.from_pipe(DiTPipeline.from_pretrained(folder))
    gates = LazyGates.for_model(pipe.transformer, num_steps=50)          # the authors' every-other-step gates
    train_gates(pipe.transformer, pipe.scheduler, gates, pipe.encode(images), labels, LazyConfig(rho_attn=..., rho_mlp=...))
    out = pipe(class_labels, 50, guidance_scale=4.0, gates=gates)       # out.images, out.skip_fraction, out.macs_ratio

Imports are lazy so `import tenfold.lazydit` stays light (no diffusers until used).
"""

from __future__ import annotations

import importlib

_WHERE = {
    "LazyConfig": "gates", "LazyGates": "gates", "lazy_score": "gates", "lazy_mix": "gates", "lazy_steps": "gates",
    "laziness_penalty": "gates", "check_threshold": "gates",
    "LazyController": "dit", "LazyDiTPipeline": "dit", "LazyPipelineOutput": "dit", "SkipStats": "dit",
    "MacsProfile": "dit", "profile_macs": "dit", "dit_blocks": "dit",
    "train_gates": "train", "TrainHistory": "train", "GateObjective": "train",
    "StaticSchedule": "baselines", "L2CRouter": "baselines", "fewer_steps": "baselines",
    "static_cache_schedule": "baselines", "static_cache_for_budget": "baselines",
    "frechet_distance": "evaluate", "gaussian_stats": "evaluate", "FeatureReference": "evaluate", "Judge": "evaluate",
    "precision_recall_units": "evaluate",
    "gating_overhead": "overhead",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"tenfold.lazydit.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'tenfold.lazydit' has no attribute {name!r}")
