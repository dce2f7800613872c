"""Numerical pruning of decoder-only autoregressive models (Shen et al., AAAI 2025, arXiv 2412.12441).

    from tenfold.prune import prune, save_pruned, load_pruned
    model = prune(model, calibration_ids, ratio=0.3, method="numerical", compensate=True)

Imports are lazy so `import tenfold.prune` stays light.
"""

from __future__ import annotations

import importlib

__all__ = [
    "prune", "PruneConfig", "METHODS", "ALLOCATIONS", "score_model", "allocate", "apply_plan",
    "numerical_score", "head_scores", "NumericalConfig",
    "compensation_delta", "compensated_weight", "CompensationConfig", "save_pruned", "load_pruned",
    "SUPPORTED", "perplexity", "window_nll", "generation_throughput", "count_parameters",
]

_WHERE = {
    "prune": "pruner", "PruneConfig": "pruner", "METHODS": "pruner", "ALLOCATIONS": "pruner",
    "score_model": "pruner", "allocate": "pruner", "apply_plan": "pruner",
    "numerical_score": "scores", "head_scores": "scores", "NumericalConfig": "scores",
    "compensation_delta": "compensate", "compensated_weight": "compensate", "CompensationConfig": "compensate",
    "save_pruned": "surgery", "load_pruned": "surgery", "SUPPORTED": "surgery",
    "perplexity": "evaluate", "window_nll": "evaluate", "generation_throughput": "evaluate", "count_parameters": "evaluate",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"tenfold.prune.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'tenfold.prune' has no attribute {name!r}")
