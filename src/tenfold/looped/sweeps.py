"""The measurements: construction vs GD, the rate in T against the GD prediction, error vs n/d, and the
trained model on held-out covariances against GD at its best step. Everything that checks theory is
float64; each function returns per-prompt arrays so the claims can resample prompts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import torch

from tenfold.core.errors import CacheError, SchemaError, check
from tenfold.core.io import load_tensors, save_tensors
from tenfold.core.runtime import is_main_process
from tenfold.looped.baselines import tune_step_size
from tenfold.looped.convergence import gd_rate, iteration_rate, log_error_slope, paper_rate, theory_step_size
from tenfold.looped.model import LinearLoopedTransformer, gd_construction, learned_preconditioner
from tenfold.looped.reference import gd_predict, least_squares_predict, least_squares_weights
from tenfold.looped.tasks import Prompts, TaskConfig, sample_prompts
from tenfold.looped.training import TrainConfig, train_model

# evaluation prompt seeds: small integers, disjoint from the training stream (training.train_seed)
TEST_SEED, TUNE_SEED = 7, 8
FLOOR = 1e-11  # relative parameter error where float64 round-off (~1e-16 per entry, summed) starts to show


def construct_vs_gd(shapes: list[tuple[int, int, int, float]], T: int, batch: int, seed: int) -> float:
    """max |looped(construction) - T-step GD| / max |GD| over prompts of each (d, m, n, kappa), float64."""
    worst = 0.0
    for i, (d, m, n, kappa) in enumerate(shapes):
        task = TaskConfig(d=d, m=m, n=n, kappa=kappa, cov_seed=seed + i)
        p = sample_prompts(batch, task, seed=seed + 100 + i)
        eta = theory_step_size(d, n)
        with torch.no_grad():
            looped = gd_construction(d, m, eta).predict(p, T)
        ref = gd_predict(p, T, eta)
        worst = max(worst, float((looped - ref).abs().max() / ref.abs().max().clamp_min(1e-300)))
    return worst


def query_errors(model: LinearLoopedTransformer, p: Prompts, T: int) -> torch.Tensor:
    """||yhat_q(t) - y_q|| / ||y_q|| after every loop t = 1..T, per prompt, in float64. (B, T)"""
    with torch.no_grad():
        traj = model.double().trajectory(p.to(torch.float64), T)  # (B, T, m)
    target = p.yq.double()[:, None, :]
    return (traj - target).norm(dim=-1) / target.norm(dim=-1).clamp_min(1e-300)


def parameter_errors(model: LinearLoopedTransformer, p: Prompts, T: int) -> torch.Tensor:
    """||W_t - W*||_F / ||W*||_F after every loop t = 1..T (W_t read out with queries e_1..e_d, W* the
    least-squares solution), per prompt, float64. Unlike the query error it has no cancellations: it falls
    monotonically for a convergent linear iteration. (B, T)"""
    B, _, d, _ = p.shape
    q = p.to(torch.float64)
    with torch.no_grad():  # queries e_1..e_d side by side: the answer to e_j is column j of W_t
        W_t = model.double().trajectory(q, T, queries=torch.eye(d, dtype=torch.float64).expand(B, d, d)).transpose(2, 3)
    W_star = least_squares_weights(q)[:, None]
    return (W_t - W_star).flatten(2).norm(dim=-1) / W_star.flatten(2).norm(dim=-1)


def rate_in_T(model: LinearLoopedTransformer, p: Prompts, T_max: int, eta: float) -> dict[str, torch.Tensor]:
    """Per prompt: the fitted slope of the log parameter error over the second half of the loops before it
    reaches float64 round-off (T_end/2..T_end, T_end = T_max or the last loop above FLOOR), the model's own
    predicted rate log rho(I - H M), plain GD's log max|1 - eta lambda| and the paper's -1/(2 kappa). (B,) each."""
    check(T_max >= 4, f"T_max must be >= 4 to fit a slope over its second half, got {T_max}")
    errors = parameter_errors(model, p, T_max)
    Ts = torch.arange(1, T_max + 1)
    end = (errors > FLOOR).int().cummin(dim=1).values.sum(1, keepdim=True)  # loops before the error first hits the floor
    window = (Ts >= (end + 1) // 2) & (Ts <= end) & (end >= 8)
    return {"slope": log_error_slope(errors, Ts, window), "own": iteration_rate(p, learned_preconditioner(model)),
            "gd": gd_rate(p, eta), "paper": paper_rate(p), "error_T_max": errors[:, -1], "window_end": end[:, 0]}


def trained_looped(task: TaskConfig, T: int, train: TrainConfig, seed: int,
                   cache: Path | None = None) -> LinearLoopedTransformer:
    """A structured looped model trained at T loops on prompts of `task` (in float32), returned in float64 on the
    CPU: it is unrolled far past T, where the theory checks need float64 round-off.

    With `cache` (a folder), the trained weights are saved there atomically and a later call with the same task,
    T, budget and seed loads them instead of training again: a killed run resumes where it stopped. Training uses
    only its own seeded generators, so a loaded model is bit for bit the one training would give."""
    model = LinearLoopedTransformer(task.d, task.m, seed=seed)
    path = None
    if cache is not None:
        key = json.dumps([asdict(task), asdict(train), T, seed], sort_keys=True)
        path = Path(cache) / f"d{task.d}-n{task.n}-T{T}-s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"
        try:
            w = load_tensors(path)
        except (CacheError, SchemaError):  # not there (yet, or removed by a concurrent run that finished): train
            w = None
        if w is not None:
            with torch.no_grad():
                model.P.copy_(w["P"])
                model.Q.copy_(w["Q"])
            return model.double().eval()
    train_model(model, task, T, replace(train, seed=seed), desc=f"looped d={task.d} n={task.n} T={T}")
    model = model.cpu()
    if path is not None and is_main_process():
        save_tensors(path, {"P": model.P.detach(), "Q": model.Q.detach()})
    return model.double().eval()


def error_by_n_over_d(d: int, ratios: list[float], Ts: list[int], kappa: float, noise: float, prompts: int,
                      seed: int) -> dict[str, dict]:
    """The constructed looped model (theory step) at n = ratio * d: per-prompt query error at each T, and
    the least-squares error (T -> infinity)."""
    rows = {}
    for i, r in enumerate(ratios):
        n = max(1, round(r * d))
        task = TaskConfig(d=d, n=n, kappa=kappa, noise=noise, cov_seed=seed)
        p = sample_prompts(prompts, task, seed=seed + TEST_SEED + 100 * i)
        errors = query_errors(gd_construction(d, 1, theory_step_size(d, n)), p, max(Ts))
        ls = (least_squares_predict(p) - p.yq).norm(dim=-1) / p.yq.norm(dim=-1)
        rows[f"{r:g}"] = {"n": n, "by_T": {str(T): errors[:, T - 1] for T in Ts}, "least_squares": ls}
    return rows


def shift(task: TaskConfig, Ts: list[int], train: TrainConfig, prompts: int, seed: int,
          cache: Path | None = None) -> dict[str, dict]:
    """Looped models trained at each T on random covariances vs GD at its best fixed step for that T (tuned
    on separate prompts of the training distribution), both on held-out prompts and covariances."""
    check(task.kappa_max is not None, "the covariance-shift experiment needs random covariances (kappa_max)")
    test = sample_prompts(prompts, task, seed=seed + TEST_SEED)
    tune = sample_prompts(prompts, task, seed=seed + TUNE_SEED)
    out = {}
    for T in Ts:
        model = trained_looped(task, T, train, seed, cache)
        with torch.no_grad():
            trained = model.predict(test, T)
        eta = tune_step_size(tune, T)
        gd = gd_predict(test, T, eta)
        untrained = LinearLoopedTransformer(task.d, task.m, seed=seed).double()
        with torch.no_grad():
            null = untrained.predict(test, T)
        out[str(T)] = {"trained": _rel(trained, test), "gd_best": _rel(gd, test), "untrained": _rel(null, test),
                       "gd_eta": eta, "preconditioner": learned_preconditioner(model)}
    return out


def _rel(pred: torch.Tensor, p: Prompts) -> torch.Tensor:
    """Per-prompt relative query error ||yhat - y_q|| / ||y_q||. (B,)"""
    target = p.yq.double()
    return (pred.double() - target).norm(dim=-1) / target.norm(dim=-1).clamp_min(1e-300)
