"""GPFA / GPGBN relational topic models (Gibbs) and Weibull graph auto-encoders (WGCAE, WGAAE).

Paper: "Scalable Weibull Graph Attention Autoencoder for Modeling Document Networks", arXiv 2410.09696.
"""

from __future__ import annotations

from tenfold.wgae.evaluate import (
    LinkModel,
    LinkSplit,
    auc_ap,
    classification_accuracy,
    cluster_accuracy,
    clustering_scores,
    random_topic_match,
    split_links,
    topic_match,
)
from tenfold.wgae.gpgbn import (
    GibbsConfig,
    GibbsFit,
    crt,
    gibbs,
    log_likelihood,
    sample,
    zero_truncated_poisson,
)
from tenfold.wgae.weibull import kl_weibull_gamma, weibull_mean, weibull_rsample

__all__ = [
    "GibbsConfig", "GibbsFit", "LinkModel", "LinkSplit", "WGAE", "WGAEConfig", "auc_ap", "classification_accuracy",
    "cluster_accuracy", "clustering_scores", "crt", "fit_wgae", "gibbs", "kl_weibull_gamma", "log_likelihood",
    "random_topic_match", "sample", "split_links", "topic_match", "train_wgae", "weibull_mean", "weibull_rsample",
    "zero_truncated_poisson",
]


def __getattr__(name: str):
    if name in ("WGAE", "WGAEConfig", "fit_wgae", "train_wgae"):
        from tenfold.wgae import model

        return getattr(model, name)
    raise AttributeError(name)
