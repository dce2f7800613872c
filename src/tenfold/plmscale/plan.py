"""Compute-optimal planning: for a budget C, the model size N_opt and token count D_opt (C = 6ND).

Laws come from the user's fit (a FIT.json written by `tenfold plmscale fit`) or from the paper's
published coefficients shipped in `paper_coefficients.json` (sources inside that file).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from tenfold.core.errors import InputError
from tenfold.plmscale.transfer import TransferLaw

OBJECTIVES = ("clm", "mlm")
A100_BF16_FLOPS = 312e12  # peak dense bf16 FLOP/s of an NVIDIA A100 (datasheet); change with --gpu-flops


class ExtrapolationWarning(UserWarning):
    """A budget outside the range of compute the law was fitted on."""


def paper_coefficients() -> dict:
    """The paper's published coefficients (and the Chinchilla anchors), with their sources."""
    text = resources.files("tenfold.plmscale").joinpath("paper_coefficients.json").read_text(encoding="utf-8")
    return json.loads(text)


def budget_flops(flops: float | None = None, gpu_hours: float | None = None, gpu_flops: float = A100_BF16_FLOPS,
                 utilisation: float = 0.4) -> float:
    """A budget in FLOPs, given directly or as GPU-hours at `utilisation` of `gpu_flops` peak."""
    if (flops is None) == (gpu_hours is None):
        raise InputError("give exactly one of --flops or --gpu-hours")
    if flops is not None:
        if not (np.isfinite(flops) and flops > 0):
            raise InputError(f"--flops must be a positive number, got {flops}")
        return float(flops)
    if not (gpu_hours > 0 and gpu_flops > 0 and 0 < utilisation <= 1):
        raise InputError(f"--gpu-hours ({gpu_hours}) and --gpu-flops ({gpu_flops}) must be positive and "
                         f"--utilisation ({utilisation}) in (0, 1]")
    return float(gpu_hours * 3600.0 * gpu_flops * utilisation)


@dataclass(frozen=True)
class Plan:
    objective: str
    flops: float
    params: float
    tokens: float
    params_interval: list | None
    tokens_interval: list | None
    law: str
    source: str
    extrapolated: bool

    def to_dict(self) -> dict:
        return asdict(self)


def _interval(fit: dict, c: float, kind: str) -> list | None:
    """Interval from the bootstrap interval of the exponent, pivoting at the fit's geometric-mean budget."""
    iv = fit.get("intervals", {}).get("a" if kind == "n" else "b")
    if not iv or "flops_range" not in fit:
        return None
    lo_c, hi_c = fit["flops_range"]
    pivot = float(np.sqrt(lo_c * hi_c))
    if fit["law"] == "isoflop":
        law = fit["n_opt"] if kind == "n" else fit["d_opt"]
        at_pivot = law["k"] * pivot ** law["p"]
    else:
        at_pivot = _parametric_opt(fit, pivot)[0 if kind == "n" else 1]
    ends = sorted(at_pivot * (c / pivot) ** np.array(iv))
    return [float(ends[0]), float(ends[1])]


def _parametric_opt(p: dict, c: float) -> tuple[float, float]:
    from tenfold.plmscale.fit import ParametricLaw

    law = ParametricLaw(p["E"], p["A"], p["B"], p["alpha"], p["beta"])
    n, d = law.optimal(c)
    return float(n), float(d)


def plan(flops: float, objective: str = "clm", fit: dict | str | os.PathLike | None = None) -> Plan:
    """N_opt and D_opt for `flops`: from `fit` (dict or FIT.json path) or the paper's IsoFLOP laws."""
    if objective not in OBJECTIVES:
        raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if not (np.isfinite(flops) and flops > 0):
        raise InputError(f"the compute budget must be positive, got {flops}")
    if fit is None:
        paper = paper_coefficients()
        law = paper[objective]["isoflop"]
        n, d = law["k_n"] * flops ** law["a"], law["k_d"] * flops ** law["b"]
        rng, source, name, n_iv, d_iv = paper["fitted_flops_range"], paper["source"], "paper isoflop", None, None
    else:
        if not isinstance(fit, dict):
            path = Path(fit)
            if not path.is_file():
                raise InputError(f"fit file {path} does not exist: write one with `tenfold plmscale fit RUNS.csv --out FIT.json`")
            from tenfold.core.io import read_json

            fit = read_json(path)
        if not isinstance(fit, dict) or fit.get("law") not in ("isoflop", "parametric"):
            law = fit.get("law") if isinstance(fit, dict) else type(fit).__name__
            raise InputError(f"fit has law {law!r}: expected 'parametric' or 'isoflop' (a FIT.json from `plmscale fit`)")
        try:
            if fit["law"] == "isoflop":
                n = fit["n_opt"]["k"] * flops ** fit["n_opt"]["p"]
                d = fit["d_opt"]["k"] * flops ** fit["d_opt"]["p"]
            else:
                n, d = _parametric_opt(fit, flops)
            rng, source, name = fit.get("flops_range", [flops, flops]), fit.get("source", "user fit"), f"user {fit['law']}"
            n_iv, d_iv = _interval(fit, flops, "n"), _interval(fit, flops, "d")
            rng = [float(rng[0]), float(rng[1])]
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise InputError(f"the {fit['law']} fit lacks or garbles a field ({type(err).__name__}: {err}): give a "
                             "FIT.json written by `tenfold plmscale fit --out`") from err
    extrapolated = not (rng[0] <= flops <= rng[1])
    if extrapolated:
        warnings.warn(f"budget {flops:.3g} FLOPs is outside the fitted range [{rng[0]:.3g}, {rng[1]:.3g}]: "
                      "the plan is an extrapolation", ExtrapolationWarning, stacklevel=2)
    return Plan(objective, float(flops), float(n), float(d), n_iv, d_iv, name, source, extrapolated)


# ------------------------------------------------------------------------------------------------
# The CLM -> MLM compute split (Cheng et al. Sec. 4: how much of a budget goes to CLM pre-training)
# ------------------------------------------------------------------------------------------------

# [V] a figure caption of the paper (10-20% of compute on CLM pre-training); [3P] the 470M example
PAPER_SPLIT = {"clm_share_range": [0.10, 0.20],
               "source": "Cheng et al. 2024, Sec. 4 (figure caption: 10-20% of the compute on CLM pre-training)",
               "example": {"params": 470e6, "clm_tokens": 21e9, "mlm_tokens": 85e9, "clm_share": 21 / 106,
                           "source": "third-party summary of the paper (470M MLM: 21B CLM + 85B MLM tokens vs 106B "
                                     "from scratch at equal FLOPs)"}}
SPLIT_ASSUMPTIONS = (
    "one model size N for both stages (CLM pre-training then MLM), the same FLOPs per token in both",
    "the transferred MLM after D_f tokens has the loss a scratch MLM has after D_f + D_t tokens (effectively "
    "transferred tokens, Hernandez et al. 2021)",
    "D_t = k D_f^alpha N^beta D_c^gamma with D_c the CLM pre-training tokens (fitted on the transfer experiment)",
    "the scratch MLM loss follows L = k D^p in tokens at that size (fitted on its scratch learning curve)",
    "no transfer law (too few checkpoints with D_t > 0) means no CLM share: pre-training does not pay",
)


@dataclass(frozen=True)
class ComputeSplit:
    flops: float
    params: float
    clm_share: float
    clm_tokens: float
    mlm_tokens: float
    loss: float
    scratch_loss: float  # the whole budget on MLM from scratch
    transfer_law: dict | None
    reason: str
    assumptions: tuple
    paper: dict

    def to_dict(self) -> dict:
        return asdict(self)


def split_loss(share, flops: float, size: dict, law: dict | None) -> np.ndarray:
    """MLM loss when `share` of `flops` pre-trains a CLM of this size and the rest trains the MLM."""
    share = np.asarray(share, float)
    total = flops / size["flops_per_token"]
    d_c, d_f = share * total, (1.0 - share) * total
    d_t = 0.0 if law is None else TransferLaw(law["k"], law["alpha"], law["beta"], law.get("gamma", 0.0)) \
        .transferred_tokens(d_f, size["params"], np.where(d_c > 0, d_c, 1.0)) * (d_c > 0)  # no CLM, no transfer
    effective = d_f + d_t
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(effective > 0, size["scratch"]["k"] * np.maximum(effective, 1e-300) ** size["scratch"]["p"], np.inf)


def plan_compute_split(flops: float, fit: dict | str | os.PathLike, params: float | None = None) -> ComputeSplit:
    """The CLM share of `flops` that minimises the MLM loss (grid of 1,000 shares in [0, 0.999])."""
    from scipy.optimize import minimize_scalar

    if not (np.isfinite(flops) and flops > 0):
        raise InputError(f"the compute budget must be positive, got {flops}")
    if not isinstance(fit, dict):
        path = Path(fit)
        if not path.is_file():
            raise InputError(f"transfer fit {path} does not exist: `tenfold plmscale reproduce` writes transfer_fit.json "
                             "beside its result")
        from tenfold.core.io import read_json

        fit = read_json(path)
    if not isinstance(fit, dict) or fit.get("law") != "transfer_split" or not fit.get("sizes"):
        raise InputError("the fit is not a transfer_split fit (a transfer_fit.json from `plmscale reproduce`)")
    try:
        sizes = {float(k): v for k, v in fit["sizes"].items()}
        n = max(sizes) if params is None else float(params)
        if n not in sizes:
            raise InputError(f"--params {params:g} is not a size of the transfer fit: choose one of "
                             f"{', '.join(f'{s:g}' for s in sorted(sizes))}")
        size, law = {**sizes[n], "params": n}, fit.get("transfer")
        grid = np.linspace(0.0, 0.999, 1000)
        losses = split_loss(grid, flops, size, law)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise InputError(f"the transfer fit lacks or garbles a field ({type(err).__name__}: {err}): give the "
                         "transfer_fit.json that `tenfold plmscale reproduce` writes") from err
    i = int(np.argmin(losses))
    share = float(grid[i])
    if law is not None and 0 < i < len(grid) - 1:  # refine between the grid neighbours
        res = minimize_scalar(lambda s: float(split_loss(s, flops, size, law)), bounds=(grid[i - 1], grid[i + 1]),
                              method="bounded")
        share = float(res.x) if res.fun <= losses[i] else share
    reason = fit.get("transfer_error") or "" if law is None else "minimum of the MLM loss over the CLM share"
    total = flops / size["flops_per_token"]
    return ComputeSplit(float(flops), n, share, share * total, (1 - share) * total,
                        float(split_loss(share, flops, size, law)), float(split_loss(0.0, flops, size, law)), law,
                        reason or "no transfer law: CLM pre-training does not pay at this scale", SPLIT_ASSUMPTIONS,
                        PAPER_SPLIT)
