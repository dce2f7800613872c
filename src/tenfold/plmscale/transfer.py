"""CLM-to-MLM transfer scaling (Cheng et al. 2024, Sec. 4; after Hernandez et al. 2021).

Effectively transferred tokens: a model initialised from a CLM checkpoint reaches loss L after D_f
MLM tokens; a from-scratch MLM needs D_e tokens for the same loss. D_t = D_e - D_f, and the
transfer law is D_t = k · D_f^alpha · N^beta.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tenfold.core.errors import InputError
from tenfold.plmscale.fit import PowerLaw, fit_power_law


def _monotone_envelope(tokens: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(tokens)
    t, l_ = tokens[order], np.minimum.accumulate(loss[order])  # a learning curve's best-so-far loss
    keep = np.concatenate([[True], np.diff(l_) < 0])
    return t[keep], l_[keep]


def scratch_tokens_for_loss(target_loss, scratch_tokens, scratch_loss) -> np.ndarray:
    """D_e: tokens a from-scratch run needs to reach `target_loss` (log-log interpolation of its curve,
    power-law extrapolation beyond its ends)."""
    t, l_ = (np.asarray(x, float) for x in (scratch_tokens, scratch_loss))
    if len(t) < 2 or np.any(t <= 0) or np.any(l_ <= 0):
        raise InputError("the scratch learning curve needs at least 2 points with positive tokens and loss")
    t, l_ = _monotone_envelope(t, l_)
    target = np.atleast_1d(np.asarray(target_loss, float))
    law = fit_power_law(t, l_) if len(t) >= 2 else None
    out = np.empty_like(target)
    for i, y in enumerate(target):
        if l_[-1] <= y <= l_[0]:
            # loss decreases along the curve: interpolate log D against log L on the reversed arrays
            out[i] = np.exp(np.interp(np.log(y), np.log(l_[::-1]), np.log(t[::-1])))
        else:
            out[i] = (y / law.k) ** (1.0 / law.p)
    return out


def effectively_transferred_tokens(finetune_tokens, finetune_loss, scratch_tokens, scratch_loss) -> np.ndarray:
    """D_t = D_e(L) - D_f for each point (D_f, L) of the transferred run's learning curve."""
    d_f = np.asarray(finetune_tokens, float)
    d_e = scratch_tokens_for_loss(finetune_loss, scratch_tokens, scratch_loss)
    return d_e - d_f


@dataclass(frozen=True)
class TransferLaw:
    """D_t = k · D_f^alpha · N^beta (Hernandez et al. 2021, pre-training fixed), times D_c^gamma when the
    CLM pre-training amount D_c varies (ours: the dependence the compute-split planner needs)."""

    k: float
    alpha: float
    beta: float
    gamma: float = 0.0

    def transferred_tokens(self, finetune_tokens, params, clm_tokens=1.0):
        return (self.k * np.asarray(finetune_tokens, float) ** self.alpha * np.asarray(params, float) ** self.beta
                * np.asarray(clm_tokens, float) ** self.gamma)

    def to_dict(self) -> dict:
        return {"law": "transfer", **asdict(self)}


def fit_transfer_law(finetune_tokens, params, transferred_tokens, clm_tokens=None) -> TransferLaw:
    """Least squares of log D_t = log k + alpha log D_f + beta log N (+ gamma log D_c) over points with D_t > 0."""
    d_f, n, d_t = (np.asarray(x, float) for x in (finetune_tokens, params, transferred_tokens))
    d_c = None if clm_tokens is None else np.asarray(clm_tokens, float)
    ok = (d_t > 0) & (d_f > 0) & (n > 0) & (True if d_c is None else d_c > 0)
    cols = 3 if d_c is None else 4
    if ok.sum() < cols + 1:
        raise InputError(f"the transfer law has {cols} parameters; it needs at least {cols + 1} points with D_t > 0, "
                         f"got {int(ok.sum())}")
    X = np.column_stack([np.ones(ok.sum()), np.log(d_f[ok]), np.log(n[ok]), *([] if d_c is None else [np.log(d_c[ok])])])
    if np.linalg.matrix_rank(X) < cols:
        raise InputError("the transfer points need at least 2 distinct model sizes and 2 distinct token counts"
                         + ("" if d_c is None else " and 2 distinct CLM pre-training amounts"))
    coef, *_ = np.linalg.lstsq(X, np.log(d_t[ok]), rcond=None)
    return TransferLaw(float(np.exp(coef[0])), float(coef[1]), float(coef[2]), float(coef[3]) if d_c is not None else 0.0)


def loss_vs_compute(flops, loss) -> PowerLaw:
    """L(C) = A · C^alpha (Cheng et al. Table 4 form, one each for scratch and transferred runs)."""
    return fit_power_law(flops, loss)
