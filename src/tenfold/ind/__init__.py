"""MIND (arXiv 2412.03930): incorrect paper-author assignment detection with a structure-enhanced LM.

Light at import time: the torch/transformers-heavy modules load when first used.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "weighted_auc_map": "metrics", "IndScore": "metrics",
    "author_graph": "graph", "AuthorGraph": "graph", "TfidfSvdEncoder": "graph", "HFMeanPoolEncoder": "graph",
    "normalize_name": "graph", "paper_string": "graph",
    "GCCAD": "gccad", "GCCADConfig": "gccad", "train_gccad": "gccad",
    "MindModel": "model", "MindConfig": "model", "StageConfig": "model", "SwiGLUProjector": "model",
    "label_slot_labels": "model", "train_stage": "model",
    "DetectorConfig": "pipeline", "fit_detector": "pipeline", "load_detector": "pipeline",
    "FeatureClassifier": "baselines", "GCNBaseline": "baselines", "train_gcn": "baselines",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tenfold.ind.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tenfold.ind' has no attribute {name!r}")
