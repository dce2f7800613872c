"""RELIFE: re-ranking with list-level hybrid feedback (arXiv 2410.20778).

List data and the click simulator live in `tenfold.data.lists`; this package holds the model, the
baselines, the metrics and the experiment.
"""

from __future__ import annotations

from tenfold.relife.baselines import DLCM, MIR, PRM, BaselineConfig, InitialRanker, PersonalVector, SetRank
from tenfold.relife.metrics import logged_metrics, map_at_k, ndcg_at_k, rerank_order, simulated_metrics
from tenfold.relife.model import (
    ComparisonAwarePatternExtractor,
    DisentangledInterestMiner,
    Relife,
    RelifeConfig,
    SequentialPreferenceMixer,
    info_nce,
    pointwise_loss,
)
from tenfold.relife.train import MODELS, TrainConfig, build_model, fit, predict, targets, train_model

__all__ = [
    "DLCM", "MIR", "PRM", "BaselineConfig", "InitialRanker", "PersonalVector", "SetRank",
    "logged_metrics", "map_at_k", "ndcg_at_k", "rerank_order", "simulated_metrics",
    "ComparisonAwarePatternExtractor", "DisentangledInterestMiner", "Relife", "RelifeConfig",
    "SequentialPreferenceMixer", "info_nce", "pointwise_loss",
    "MODELS", "TrainConfig", "build_model", "fit", "predict", "targets", "train_model",
]
