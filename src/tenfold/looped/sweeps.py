"""The measurements: error vs loops T, vs n/d, vs kappa, and construction-vs-GD agreement."""

from __future__ import annotations

from dataclasses import replace

import torch

from tenfold.core.errors import check
from tenfold.looped.baselines import GradientDescent, LeastSquares, PreconditionedGD, tune_step_size
from tenfold.looped.convergence import error_threshold, theory_step_size
from tenfold.looped.model import (
    LinearLoopedTransformer,
    LinearMultiLayerTransformer,
    gd_construction,
    implicit_weights,
)
from tenfold.looped.reference import gd_predict, relative_error
from tenfold.looped.tasks import Prompts, TaskConfig, sample_prompts, task_covariance
from tenfold.looped.training import TrainConfig, train_model

PARAM_PROMPTS = 256  # prompts whose implicit weights W_T are read out for the parameter error


def construct_vs_gd(shapes: list[tuple[int, int, int, float]], T: int, batch: int, seed: int) -> float:
    """max |looped(construction) - T-step GD| over prompts of each (d, m, n, kappa), float64."""
    worst = 0.0
    for i, (d, m, n, kappa) in enumerate(shapes):
        task = TaskConfig(d=d, m=m, n=n, kappa=kappa, cov_seed=seed + i)
        p = sample_prompts(batch, task, seed=seed + 100 + i)
        eta = theory_step_size(d, n)
        with torch.no_grad():
            looped = gd_construction(d, m, eta).predict(p, T)
        worst = max(worst, float((looped - gd_predict(p, T, eta)).abs().max()))
    return worst


def err_by_T(task: TaskConfig, Ts: list[int], train: TrainConfig | None, test: int, seed: int,
             multilayer: bool = True) -> dict[str, dict[str, float]]:
    """Query error vs T for the constructed / trained looped model, the multi-layer contrast and the references.

    The GD reference uses the best fixed step size for each T (tuned on separate prompts), the
    construction uses the theory step size; `train=None` skips the trained models.
    """
    check(all(T >= 1 for T in Ts), f"every T must be >= 1, got {Ts}")
    p = sample_prompts(test, task, seed=seed + 7)
    tune = sample_prompts(512, task, seed=seed + 8)
    inv_sigma = torch.linalg.inv(task_covariance(task))
    eta = theory_step_size(task.d, task.n)
    out: dict[str, dict[str, float]] = {k: {} for k in ("constructed", "gd", "precond_gd", "trained", "multilayer")}
    for T in Ts:
        key = str(T)
        with torch.no_grad():
            out["constructed"][key] = relative_error(gd_construction(task.d, task.m, eta).predict(p, T), p.yq)
        out["gd"][key] = relative_error(GradientDescent(tune_step_size(tune, T)).predict(p, T), p.yq)
        pgd = PreconditionedGD(tune_step_size(tune, T, inv_sigma), inv_sigma)
        out["precond_gd"][key] = relative_error(pgd.predict(p, T), p.yq)
        if train is None:
            continue
        looped = LinearLoopedTransformer(task.d, task.m, seed=seed)
        train_model(looped, task, T, replace(train, seed=seed), desc=f"looped T={T}")
        with torch.no_grad():
            out["trained"][key] = relative_error(looped.predict(p.to(torch.float32), T), p.yq)
        if multilayer:
            deep = LinearMultiLayerTransformer(task.d, task.m, layers=T, seed=seed)
            train_model(deep, task, T, replace(train, seed=seed), desc=f"multilayer L={T}")
            with torch.no_grad():
                out["multilayer"][key] = relative_error(deep.predict(p.to(torch.float32), T), p.yq)
    out["least_squares"] = {"inf": relative_error(LeastSquares().predict(p), p.yq)}
    return {k: v for k, v in out.items() if v}


def constructed_error(task: TaskConfig, T: int, test: int, seed: int) -> dict[str, float]:
    """The constructed looped model (theory step size) at T loops: query error and parameter error."""
    p = sample_prompts(test, task, seed=seed + 11)
    model = gd_construction(task.d, task.m, theory_step_size(task.d, task.n))
    sub = Prompts(p.X[:PARAM_PROMPTS], p.Y[:PARAM_PROMPTS], p.xq[:PARAM_PROMPTS], None, p.W[:PARAM_PROMPTS])
    with torch.no_grad():
        query = relative_error(model.predict(p, T), p.yq)
        W_hat = implicit_weights(model, sub, T)  # d forward passes per prompt: a subset is enough
    param = (W_hat - sub.W).flatten(1).norm(dim=1) / sub.W.flatten(1).norm(dim=1)
    return {"query_err": query, "param_err_mean": float(param.mean()), "param_err_p90": float(param.quantile(0.9)),
            "threshold": error_threshold(T, task.d, task.n, task.kappa)}


def err_by_n_over_d(task: TaskConfig, ratios: list[float], T: int, test: int, seed: int) -> dict[str, dict[str, float]]:
    """Constructed looped model at T loops for n = ratio * d (kappa fixed)."""
    rows = {}
    for r in ratios:
        n = max(1, round(r * task.d))
        rows[f"{r:g}"] = constructed_error(replace(task, n=n), T, test, seed)
    return rows


def err_by_kappa(task: TaskConfig, kappas: list[float], T: int, test: int, seed: int) -> dict[str, dict[str, float]]:
    """Constructed looped model at T loops for each condition number kappa (n fixed)."""
    return {f"{k:g}": constructed_error(replace(task, kappa=float(k)), T, test, seed) for k in kappas}
