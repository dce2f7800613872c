"""`tenfold looped ...`: train, construct, sweep, reproduce, bench."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands, seed_option
from tenfold.core.errors import check
from tenfold.core.runtime import work_starts
from tenfold.looped.limits import MAX_DIM, MAX_KAPPA, MAX_N, MAX_NOISE, MAX_PROMPTS, MAX_STEPS, MAX_T

app = typer.Typer(help="Linear looped transformers doing multi-step gradient descent in context (arXiv 2410.11268).",
                  no_args_is_help=True)
add_standard_commands(app, "looped")


def _task(d: int, m: int, n: int, kappa: float, noise: float, seed: int, kappa_max: float | None = None):
    from tenfold.looped.tasks import TaskConfig

    return TaskConfig(d=d, m=m, n=n, kappa=kappa, noise=noise, cov_seed=seed, kappa_max=kappa_max)


def _option(default, help: str, lo, hi, flag: str | None = None):
    """A bounded option: the parser refuses values outside [lo, hi] (a float's NaN is refused by TaskConfig)."""
    return typer.Option(default, *([flag] if flag else []), min=lo, max=hi, help=help)


TEST_PROMPTS = 2000  # `train` reports its test error on this many fresh prompts


@app.command()
def train(
    T: int = _option(8, "Number of loops.", 1, MAX_T, "--T"),
    d: int = _option(5, "Input dimension.", 1, MAX_DIM),
    m: int = _option(1, "Output dimension.", 1, MAX_DIM),
    n: int = _option(20, "In-context examples per prompt.", 1, MAX_N),
    kappa: float = _option(1.0, "Condition number of the input covariance.", 1.0, MAX_KAPPA),
    kappa_max: float = _option(None, "Instead: a random covariance per prompt, condition number up to this.", 1.0,
                               MAX_KAPPA),
    noise: float = _option(0.0, "Label noise std.", 0.0, MAX_NOISE),
    steps: int = _option(400, "Adam steps.", 1, MAX_STEPS),
    full: bool = typer.Option(False, help="Train full P, Q instead of the GD-shaped blocks."),
    seed: int = seed_option(),
    out: Path = typer.Option(Path("looped.safetensors"), help="Where to save the learned P, Q (safetensors)."),
) -> None:
    """Learn the looped transformer's weights on synthetic prompts; save them and print the test error."""
    from tenfold.core.io import save_tensors
    from tenfold.looped import (
        LinearLoopedTransformer,
        TrainConfig,
        relative_error,
        sample_prompts,
        train_model,
    )
    from tenfold.looped.tasks import check_size, prompt_elements

    task = _task(d, m, n, kappa, noise, seed, kappa_max)
    cfg = TrainConfig(steps=steps, seed=seed)
    per_loop = (d + m if full else m) * (n + 1) * cfg.batch  # the y-rows (full: all rows) autograd keeps per loop
    check_size(f"training at T={T}", prompt_elements(cfg.batch, task) + cfg.batch * n * (n + 1) + T * per_loop)
    check_size("the test evaluation", prompt_elements(TEST_PROMPTS, task) + TEST_PROMPTS * n * (n + 1))
    work_starts("training")
    model = LinearLoopedTransformer(d, m, structured=not full, seed=seed)
    losses = train_model(model, task, T, cfg)
    model = model.cpu()
    p = sample_prompts(TEST_PROMPTS, task, seed=seed + 7, dtype=model.P.dtype)
    err = relative_error(model.predict(p, T).detach(), p.yq)
    P, Q = model.weights()
    save_tensors(out, {"P": P.detach(), "Q": Q.detach()},
                 metadata={"d": str(d), "m": str(m), "T": str(T), "structured": str(not full)})
    typer.echo(json.dumps({"final_train_loss": losses[-1], "test_relative_error": err, "weights": str(out)}))


@app.command()
def construct(
    T: int = _option(20, "Number of loops = GD steps.", 1, MAX_T, "--T"),
    eta: float = _option(0.0, "GD step size; 0 picks the theory step 1/(1+sqrt(d/n))^2.", 0.0, 100.0),
    data: Path = typer.Option(None, help="Your prompts: .npz with X (B,n,d), Y (B,n,m), xq (B,d)."),
    d: int = _option(5, "Input dimension (synthetic prompts).", 1, MAX_DIM),
    m: int = _option(1, "Output dimension (synthetic prompts).", 1, MAX_DIM),
    n: int = _option(20, "Examples per prompt (synthetic prompts).", 1, MAX_N),
    kappa: float = _option(1.0, "Condition number (synthetic prompts).", 1.0, MAX_KAPPA),
    seed: int = seed_option(),
    weights: Path = typer.Option(None, help="Instead of the construction, run saved weights (from `train`)."),
) -> None:
    """Set the weights by formula (one loop = one GD step) and compare with T-step GD in float64."""
    import torch

    from tenfold.core.io import load_tensors
    from tenfold.looped import (
        LinearLoopedTransformer,
        gd_construction,
        gd_predict,
        least_squares_predict,
        load_prompts,
        sample_prompts,
        theory_step_size,
    )
    from tenfold.looped.tasks import check_size, prompt_elements

    check(math.isfinite(eta), f"--eta must be a finite step size (0 for the theory step), got {eta}")
    if data is not None:
        p = load_prompts(data)
        B, n_, d_, m_ = p.shape
        check(d_ <= MAX_DIM and m_ <= MAX_DIM and n_ <= MAX_N,
              f"{data}: d={d_}, m={m_}, n={n_}; the limits are d, m <= {MAX_DIM} and n <= {MAX_N}")
    else:
        task = _task(d, m, n, kappa, 0.0, seed)
        B, n_, d_, m_ = 256, n, d, m
        check_size("the prompts", prompt_elements(B, task))
    check_size(f"{B} prompts with n={n_}", B * (n_ + 1) * (d_ + m_) + B * n_ * (n_ + 1) + B * (d_ + m_) ** 2)
    if weights is not None:
        w = load_tensors(weights)
        check({"P", "Q"} <= w.keys(), f"{weights}: expected tensors P and Q (from `tenfold looped train`), got {sorted(w)}")
        D = d_ + m_
        check(w["P"].shape == (D, D) and w["Q"].shape == (D, D),
              f"{weights}: P, Q have shapes {tuple(w['P'].shape)}, {tuple(w['Q'].shape)}, but the prompts have "
              f"d={d_}, m={m_}: expected d + m = {D} rows and columns each")
        check(bool(torch.isfinite(w["P"]).all() and torch.isfinite(w["Q"]).all()), f"{weights}: P or Q holds NaN or inf")
    work_starts("the looped forward")
    if data is None:
        p = sample_prompts(B, task, seed=seed)
    step = eta if eta > 0 else theory_step_size(d_, n_)
    if weights is not None:
        model = LinearLoopedTransformer(d_, m_, structured=False).double()
        with torch.no_grad():
            model.P.copy_(w["P"])
            model.Q.copy_(w["Q"])
    else:
        model = gd_construction(d_, m_, step)
    with torch.no_grad():
        pred = model.predict(p, T)
    gd = gd_predict(p, T, step)
    typer.echo(json.dumps({"T": T, "eta": step, "prompts": p.shape[0], "max_abs_vs_gd": float((pred - gd).abs().max()),
                           "max_abs_vs_least_squares": float((pred - least_squares_predict(p)).abs().max())}))


@app.command()
def sweep(
    what: str = typer.Option("rate", help="rate (log-error slope vs the GD prediction) or n (error vs n/d and T)."),
    d: int = _option(8, "Input dimension.", 1, MAX_DIM),
    n_per_d: float = _option(2.0, "n / d (rate).", 0.0, float(MAX_N)),
    kappa: float = _option(2.0, "Condition number of the covariance.", 1.0, MAX_KAPPA),
    T: int = _option(200, "Largest number of loops.", 4, MAX_T, "--T"),
    values: str = typer.Option("0.5,1,2,4,8", help="n / d values (n)."),
    noise: float = _option(0.0, "Label noise std (n).", 0.0, MAX_NOISE),
    prompts: int = _option(200, "Test prompts.", 2, MAX_PROMPTS),
    seed: int = seed_option(),
    out: Path = typer.Option(None, help="Write the rows as JSON here."),
) -> None:
    """The constructed looped model (theory step, float64): its rate against the prediction, or its error vs n/d."""
    import numpy as np

    from tenfold.core.stats import one_sample
    from tenfold.looped.convergence import theory_step_size
    from tenfold.looped.model import gd_construction
    from tenfold.looped.sweeps import TEST_SEED, error_by_n_over_d, rate_in_T
    from tenfold.looped.tasks import check_size, prompt_elements, sample_prompts

    check(what in ("rate", "n"), f"--what must be rate or n, got {what!r}")
    if what == "rate":
        check(math.isfinite(n_per_d) and n_per_d * d <= MAX_N,
              f"--n-per-d must be a finite ratio with n = n_per_d * d <= {MAX_N}, got {n_per_d} (d={d})")
        task = _task(d, 1, max(1, round(n_per_d * d)), kappa, 0.0, seed)
        check(task.n > d, f"the rate needs n > d (a unique least-squares solution), got n={task.n}, d={d}")
        # prompts, K for d probe queries, and the y-rows of every loop (kept to fit the slope)
        check_size(f"the rate sweep to T={T}", prompt_elements(prompts, task) + prompts * task.n * (task.n + d)
                   + T * prompts * (task.n + d) + prompts * d * d)
        work_starts("the rate sweep")
        eta = theory_step_size(d, task.n)
        r = rate_in_T(gd_construction(d, 1, eta), sample_prompts(prompts, task, seed=seed + TEST_SEED), T, eta)
        # a prompt whose error reaches float64 round-off within 8 loops has no window to fit (slope NaN): left
        # out and counted, as in `reproduce`
        fitted = r["slope"].isfinite()
        check(int(fitted.sum()) >= 2, f"only {int(fitted.sum())} of {prompts} prompts keep their error above float64 "
              "round-off for 8 loops, too few to fit a rate: use a smaller n / d or a larger kappa")
        ratio = (r["slope"] / r["gd"])[fitted].numpy()
        iv = one_sample(ratio, 1.0, statistic=np.median, unit="prompt")
        rows = {"d": d, "n": task.n, "eta": eta, "median_ratio_measured_over_gd": float(np.median(ratio)),
                "interval_minus_1": iv.bounds(),
                "median_ratio_measured_over_paper": float((r["slope"] / r["paper"])[fitted].median()),
                "median_gd_rate": float(r["gd"].median()), "unfitted_prompts": int((~fitted).sum())}
    else:
        try:
            ratios = [float(v) for v in values.split(",")]
        except ValueError as err:
            raise typer.BadParameter(f"--values must be comma-separated numbers, got {values!r}") from err
        check(all(math.isfinite(v) and v > 0 and max(1, round(v * d)) <= MAX_N for v in ratios),
              f"--values (n / d) must be positive finite ratios with n = ratio * d <= {MAX_N}, got {values!r}")
        for v in ratios:
            task = _task(d, 1, max(1, round(v * d)), kappa, noise, seed)
            check_size(f"n/d = {v:g} to T={T}", prompt_elements(prompts, task) + prompts * task.n * (task.n + 1)
                       + T * prompts * (task.n + 1))
        work_starts("the n/d sweep")
        Ts = sorted({1, 2, 5, 10, 20, 50, 100, T} & set(range(1, T + 1)))
        table = error_by_n_over_d(d, ratios, Ts, kappa, noise, prompts, seed)
        rows = {r: {**{f"T={t}": float(e.median()) for t, e in row["by_T"].items()},
                    "least_squares": float(row["least_squares"].median())} for r, row in table.items()}
    text = json.dumps(rows, indent=1)
    if out is not None:
        from tenfold.core.io import atomic_write_text

        atomic_write_text(out, text)
    typer.echo(text)
