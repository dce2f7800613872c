"""LazyDiT: lazy learning for the acceleration of Diffusion Transformers (Shen et al., AAAI 2025, arXiv 2412.12444).

    from tenfold.lazydit import LazyGates, LazyConfig, LazyDiTPipeline, train_gates
    gates = LazyGates(num_steps=20, num_layers=len(model.transformer_blocks), dim=inner_dim)
    train_gates(model, ddim_scheduler, gates, images_in_minus1_1, labels, LazyConfig(rho_attn=1e-3, rho_mlp=1e-3))
    out = LazyDiTPipeline(model, ddim_scheduler)(class_labels, 20, policy=gates, threshold=0.5)

Imports are lazy so `import tenfold.lazydit` stays light (no diffusers until used).
"""

from __future__ import annotations

import importlib

__all__ = [
    "LazyConfig", "LazyGates", "lazy_score", "lazy_mix", "laziness_penalty", "check_threshold",
    "LazyController", "LazyDiTPipeline", "LazyOutput", "SkipStats", "MacsProfile", "profile_macs", "dit_blocks",
    "train_gates", "TrainHistory",
    "StaticSchedule", "L2CRouter", "fewer_steps", "static_cache_schedule", "static_cache_for_budget",
    "frechet_distance", "gaussian_stats", "Judge",
]

_WHERE = {
    "LazyConfig": "gates", "LazyGates": "gates", "lazy_score": "gates", "lazy_mix": "gates",
    "laziness_penalty": "gates", "check_threshold": "gates",
    "LazyController": "dit", "LazyDiTPipeline": "dit", "LazyOutput": "dit", "SkipStats": "dit",
    "MacsProfile": "dit", "profile_macs": "dit", "dit_blocks": "dit",
    "train_gates": "train", "TrainHistory": "train",
    "StaticSchedule": "baselines", "L2CRouter": "baselines", "fewer_steps": "baselines",
    "static_cache_schedule": "baselines", "static_cache_for_budget": "baselines",
    "frechet_distance": "evaluate", "gaussian_stats": "evaluate", "Judge": "evaluate",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"tenfold.lazydit.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'tenfold.lazydit' has no attribute {name!r}")
