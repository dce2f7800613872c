"""Compute-optimal protein language models (Cheng et al. 2024, arXiv 2411.02142): scaling-law fitting,
compute planning, CLM->MLM transfer scaling and tiny IsoFLOP sweeps.

Light at import: transformers and torch models load only when a sweep runs.
"""

from tenfold.plmscale.fit import (
    IsoFlopFit,
    ParametricFit,
    ParametricLaw,
    PowerLaw,
    bootstrap_isoflop,
    bootstrap_parametric,
    fit_isoflop,
    fit_parametric,
    fit_power_law,
    heldout_rel_err,
    load_runs,
)
from tenfold.plmscale.plan import ExtrapolationWarning, Plan, budget_flops, paper_coefficients, plan
from tenfold.plmscale.transfer import (
    TransferLaw,
    effectively_transferred_tokens,
    fit_transfer_law,
    loss_vs_compute,
    scratch_tokens_for_loss,
)

__all__ = [
    "ExtrapolationWarning", "IsoFlopFit", "ParametricFit", "ParametricLaw", "Plan", "PowerLaw", "TransferLaw",
    "bootstrap_isoflop", "bootstrap_parametric", "budget_flops", "effectively_transferred_tokens", "fit_isoflop",
    "fit_parametric", "fit_power_law", "fit_transfer_law", "heldout_rel_err", "load_runs", "loss_vs_compute",
    "paper_coefficients", "plan", "scratch_tokens_for_loss",
]
