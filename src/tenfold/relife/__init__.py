"""RELIFE: re-ranking with list-level hybrid feedback (arXiv 2410.20778).

List data and the click simulator live in `tenfold.data.lists`; this package holds the model, the
baselines, the metrics and the experiment.
"""

from __future__ import annotations

from tenfold.relife.baselines import DLCM, PRM, BaselineConfig, InitialRanker, MIRLite, SetRank
from tenfold.relife.metrics import evaluate_rerank, map_at_k, ndcg_at_k, rerank_order, utility_at_k
from tenfold.relife.model import (
    ComparisonAwarePatternExtractor,
    DisentangledInterestMiner,
    Relife,
    RelifeConfig,
    SequentialPreferenceMixer,
    info_nce,
)
from tenfold.relife.train import MODELS, TrainConfig, build_model, fit, predict

__all__ = [
    "DLCM", "PRM", "BaselineConfig", "InitialRanker", "MIRLite", "SetRank",
    "evaluate_rerank", "map_at_k", "ndcg_at_k", "rerank_order", "utility_at_k",
    "ComparisonAwarePatternExtractor", "DisentangledInterestMiner", "Relife", "RelifeConfig",
    "SequentialPreferenceMixer", "info_nce",
    "MODELS", "TrainConfig", "build_model", "fit", "predict",
]
