"""`tenfold looped ...`: train, construct, sweep, reproduce, bench."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands
from tenfold.core.errors import check

app = typer.Typer(help="Linear looped transformers doing multi-step gradient descent in context (arXiv 2410.11268).",
                  no_args_is_help=True)
add_standard_commands(app, "looped")


def _task(d: int, m: int, n: int, kappa: float, noise: float, seed: int, kappa_max: float | None = None):
    from tenfold.looped.tasks import TaskConfig

    return TaskConfig(d=d, m=m, n=n, kappa=kappa, noise=noise, cov_seed=seed, kappa_max=kappa_max)


@app.command()
def train(
    T: int = typer.Option(8, "--T", help="Number of loops."),
    d: int = typer.Option(5, help="Input dimension."),
    m: int = typer.Option(1, help="Output dimension."),
    n: int = typer.Option(20, help="In-context examples per prompt."),
    kappa: float = typer.Option(1.0, help="Condition number of the input covariance (>= 1)."),
    kappa_max: float = typer.Option(None, help="Instead: a random covariance per prompt, condition number up to this."),
    noise: float = typer.Option(0.0, help="Label noise std."),
    steps: int = typer.Option(400, help="Adam steps."),
    full: bool = typer.Option(False, help="Train full P, Q instead of the GD-shaped blocks."),
    seed: int = typer.Option(0, help="Seed."),
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

    task = _task(d, m, n, kappa, noise, seed, kappa_max)
    model = LinearLoopedTransformer(d, m, structured=not full, seed=seed)
    losses = train_model(model, task, T, TrainConfig(steps=steps, seed=seed))
    model = model.cpu()
    p = sample_prompts(2000, task, seed=seed + 7, dtype=model.P.dtype)
    err = relative_error(model.predict(p, T).detach(), p.yq)
    P, Q = model.weights()
    save_tensors(out, {"P": P.detach(), "Q": Q.detach()},
                 metadata={"d": str(d), "m": str(m), "T": str(T), "structured": str(not full)})
    typer.echo(json.dumps({"final_train_loss": losses[-1], "test_relative_error": err, "weights": str(out)}))


@app.command()
def construct(
    T: int = typer.Option(20, "--T", help="Number of loops = GD steps."),
    eta: float = typer.Option(0.0, help="GD step size; 0 picks the theory step 1/(1+sqrt(d/n))^2."),
    data: Path = typer.Option(None, help="Your prompts: .npz with X (B,n,d), Y (B,n,m), xq (B,d)."),
    d: int = typer.Option(5, help="Input dimension (synthetic prompts)."),
    m: int = typer.Option(1, help="Output dimension (synthetic prompts)."),
    n: int = typer.Option(20, help="Examples per prompt (synthetic prompts)."),
    kappa: float = typer.Option(1.0, help="Condition number (synthetic prompts)."),
    seed: int = typer.Option(0, help="Seed."),
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

    check(T >= 1, f"--T must be >= 1, got {T}")
    p = load_prompts(data) if data is not None else sample_prompts(256, _task(d, m, n, kappa, 0.0, seed), seed=seed)
    _, n_, d_, m_ = p.shape
    step = eta if eta > 0 else theory_step_size(d_, n_)
    if weights is not None:
        w = load_tensors(weights)
        D = w["P"].shape[0]
        check(D == d_ + m_, f"{weights}: weights are for d + m = {D}, but the prompts have d={d_}, m={m_}")
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
    d: int = typer.Option(8, help="Input dimension."),
    n_per_d: float = typer.Option(2.0, help="n / d (rate)."),
    kappa: float = typer.Option(2.0, help="Condition number of the covariance."),
    T: int = typer.Option(200, "--T", help="Largest number of loops."),
    values: str = typer.Option("0.5,1,2,4,8", help="n / d values (n)."),
    noise: float = typer.Option(0.0, help="Label noise std (n)."),
    prompts: int = typer.Option(200, help="Test prompts."),
    seed: int = typer.Option(0, help="Seed."),
    out: Path = typer.Option(None, help="Write the rows as JSON here."),
) -> None:
    """The constructed looped model (theory step, float64): its rate against the prediction, or its error vs n/d."""
    import numpy as np

    from tenfold.core.stats import one_sample
    from tenfold.looped.convergence import theory_step_size
    from tenfold.looped.model import gd_construction
    from tenfold.looped.sweeps import TEST_SEED, error_by_n_over_d, rate_in_T
    from tenfold.looped.tasks import sample_prompts

    check(what in ("rate", "n"), f"--what must be rate or n, got {what!r}")
    check(T >= 4 and prompts >= 2, f"need --T >= 4 and --prompts >= 2, got {T}, {prompts}")
    if what == "rate":
        task = _task(d, 1, max(1, round(n_per_d * d)), kappa, 0.0, seed)
        check(task.n > d, f"the rate needs n > d (a unique least-squares solution), got n={task.n}, d={d}")
        eta = theory_step_size(d, task.n)
        r = rate_in_T(gd_construction(d, 1, eta), sample_prompts(prompts, task, seed=seed + TEST_SEED), T, eta)
        ratio = (r["slope"] / r["gd"]).numpy()
        iv = one_sample(ratio, 1.0, statistic=np.median, unit="prompt")
        rows = {"d": d, "n": task.n, "eta": eta, "median_ratio_measured_over_gd": float(np.median(ratio)),
                "interval_minus_1": iv.bounds(), "median_ratio_measured_over_paper": float((r["slope"] / r["paper"]).median()),
                "median_gd_rate": float(r["gd"].median())}
    else:
        try:
            ratios = [float(v) for v in values.split(",")]
        except ValueError as err:
            raise typer.BadParameter(f"--values must be comma-separated numbers, got {values!r}") from err
        check(all(v > 0 for v in ratios), f"--values (n / d) must be positive, got {values!r}")
        Ts = sorted({1, 2, 5, 10, 20, 50, 100, T} & set(range(1, T + 1)))
        table = error_by_n_over_d(d, ratios, Ts, kappa, noise, prompts, seed)
        rows = {r: {**{f"T={t}": float(e.median()) for t, e in row["by_T"].items()},
                    "least_squares": float(row["least_squares"].median())} for r, row in table.items()}
    text = json.dumps(rows, indent=1)
    if out is not None:
        from tenfold.core.io import atomic_write_text

        atomic_write_text(out, text)
    typer.echo(text)
