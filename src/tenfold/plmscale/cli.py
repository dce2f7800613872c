"""`tenfold plmscale ...`: fit, plan, transfer, sweep (plus reproduce and bench)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands
from tenfold.core.errors import InputError

app = typer.Typer(help="Compute-optimal protein language models (Cheng et al. 2024): fit scaling laws, plan budgets, "
                       "CLM->MLM transfer, IsoFLOP sweeps.", no_args_is_help=True)
add_standard_commands(app, "plmscale")


def _echo_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=float))


@app.command("fit")
def fit(
    runs: Path = typer.Argument(..., help="CSV with columns params,tokens,loss (optional flops = 6*params*tokens)."),
    law: str = typer.Option("parametric", help="parametric (E + A/N^alpha + B/D^beta) or isoflop (profiles + power laws)."),
    out: Path = typer.Option(None, help="Write the fit (coefficients and 95% intervals) to this JSON file."),
    bootstrap: int = typer.Option(100, help="Bootstrap resamples for the intervals (0: none)."),
    drop_highest_loss: int = typer.Option(0, help="Drop this many highest-loss runs first (Besiroglu et al. drop 5)."),
    starts: int = typer.Option(50, help="L-BFGS-B starts: the best of Hoffmann's 4500-point grid (4500: all)."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    interval: str = typer.Option("percentile", help="Parametric bootstrap interval: percentile, basic or bca."),
) -> None:
    """Fit a scaling law to a runs table; print it and optionally write FIT.json."""
    from tenfold.core.io import atomic_write_json
    from tenfold.plmscale import fit as F

    if interval not in F.INTERVAL_METHODS:
        raise InputError(f"--interval must be one of {', '.join(F.INTERVAL_METHODS)}, got {interval!r}")
    table = F.load_runs(runs, drop_highest_loss=drop_highest_loss)
    if law == "parametric":
        result = F.fit_parametric(table, top_starts=starts)
        if bootstrap:
            F.bootstrap_parametric(table, result, n_boot=bootstrap, seed=seed, method=interval)
    elif law == "isoflop":
        result = F.fit_isoflop(table)
        if bootstrap:
            F.bootstrap_isoflop(table, result, n_boot=bootstrap, seed=seed)
    else:
        raise InputError(f"--law must be 'parametric' or 'isoflop', got {law!r}")
    d = {**result.to_dict(), "source": str(runs)}
    if out is not None:
        atomic_write_json(out, d)
        typer.echo(f"fit: {out.resolve()}")
    _echo_json({k: v for k, v in d.items() if k != "budgets"})


@app.command("plan")
def plan(
    flops: float = typer.Option(None, help="Compute budget in FLOPs (C = 6ND)."),
    gpu_hours: float = typer.Option(None, help="Or a budget in GPU-hours..."),
    gpu_flops: float = typer.Option(312e12, help="...at this peak FLOP/s per GPU (A100 bf16: 312e12)..."),
    utilisation: float = typer.Option(0.4, help="...and this model-FLOPs utilisation."),
    objective: str = typer.Option("clm", help="clm or mlm."),
    fit: Path = typer.Option(None, help="A FIT.json from `plmscale fit` (default: the paper's published laws)."),
) -> None:
    """Compute-optimal model size and token count for a budget."""
    import warnings

    from tenfold.plmscale.plan import budget_flops
    from tenfold.plmscale.plan import plan as make_plan

    c = budget_flops(flops, gpu_hours, gpu_flops, utilisation)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = make_plan(c, objective, fit)
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    _echo_json(p.to_dict())


@app.command("transfer")
def transfer(
    scratch: Path = typer.Argument(..., help="CSV of the from-scratch MLM learning curve: tokens,loss."),
    finetuned: Path = typer.Argument(..., help="CSV of the CLM-initialised MLM curve: tokens,loss[,params]."),
    params: float = typer.Option(None, help="Model size N when the CSV has no params column."),
) -> None:
    """Effectively transferred tokens D_t = D_e - D_f along a transferred run (and the law when sizes vary)."""
    import pandas as pd

    from tenfold.plmscale.transfer import effectively_transferred_tokens, fit_transfer_law

    frames = []
    for p in (scratch, finetuned):
        if not p.is_file():
            raise InputError(f"{p} does not exist: give a CSV with columns tokens,loss")
        f = pd.read_csv(p)
        if not {"tokens", "loss"} <= set(f.columns):
            raise InputError(f"{p} lacks columns tokens,loss (found {list(f.columns)})")
        frames.append(f)
    s, t = frames
    d_t = effectively_transferred_tokens(t["tokens"], t["loss"], s["tokens"], s["loss"])
    out = {"finetune_tokens": t["tokens"].tolist(), "transferred_tokens": d_t.tolist()}
    n = t["params"] if "params" in t.columns else (None if params is None else pd.Series([params] * len(t)))
    if n is not None and n.nunique() > 1:
        out["law"] = fit_transfer_law(t["tokens"], n, d_t).to_dict()
    _echo_json(out)


@app.command("sweep")
def sweep(
    out: Path = typer.Option(Path("plmscale-sweep/runs.csv"), help="Runs CSV (appended to; rerun to resume)."),
    fasta: Path = typer.Option(None, help="Protein FASTA file (default: the UniProt sample of mmseqs2-examples)."),
    budgets: str = typer.Option(None, help="Comma-separated FLOP budgets (default: the quick profile's)."),
    shapes: str = typer.Option(None, help="Comma-separated model shapes HIDDENxLAYERS for every budget (default: "
                               "the quick profile's windows per budget)."),
    objectives: str = typer.Option("clm,mlm", help="clm, mlm or both."),
    max_sequences: int = typer.Option(None, help="Use only the first N sequences."),
    seed: int = typer.Option(0, help="Seed."),
    lr: float = typer.Option(None, help="Peak learning rate (default: the quick profile's)."),
    seq_len: int = typer.Option(128, help="Tokens per training window."),
    batch_size: int = typer.Option(16, help="Windows per optimiser step."),
    workers: int = typer.Option(1, help="Runs trained at once, one process each (results do not depend on it)."),
) -> None:
    """Train tiny CLM/MLM models over an IsoFLOP grid and log each run to the runs CSV.

    --shapes applies to every budget; a window per budget is BUDGET=SHAPES|..., e.g.
    --shapes "1e10=8x1|16x1|24x1,1e11=16x1|24x1|32x2" (then --budgets is taken from it), and
    OBJ@BUDGET=SHAPES|... sets one objective's window, e.g. "clm@1e10=4x1|6x1|8x1".
    """
    from tenfold.data.fasta import load_proteins
    from tenfold.plmscale.sweep import SweepConfig, run_sweep

    try:
        default = SweepConfig()
        budget_list = default.budgets if budgets is None else tuple(float(b) for b in budgets.split(","))
        shape_list, windows = default.shapes, (default.budget_shapes if budgets is None and shapes is None else ())
        if shapes is not None and "=" in shapes:
            entries = []
            for key, w in (item.split("=") for item in shapes.split(",")):
                obj, _, c = key.rpartition("@")  # OBJ@BUDGET=... for one objective, BUDGET=... for all
                window = tuple(tuple(int(v) for v in s.split("x")) for s in w.split("|"))
                entries.append((float(c), window, obj) if obj else (float(c), window))
            windows = tuple(entries)
            budget_list = tuple(dict.fromkeys(e[0] for e in windows))
        elif shapes is not None:
            shape_list = tuple(tuple(int(v) for v in s.split("x")) for s in shapes.split(","))
        if any(len(s) != 2 for e in windows for s in e[1]) or any(len(s) != 2 for s in shape_list):
            raise ValueError("a shape is HIDDENxLAYERS")
        if seq_len < 2 or batch_size < 1:
            raise ValueError("--seq-len must be at least 2 and --batch-size at least 1")
        extra = {} if lr is None else {"lr": lr}
        cfg = SweepConfig(budgets=budget_list, shapes=shape_list, budget_shapes=windows, seq_len=seq_len,
                          batch_size=batch_size,
                          objectives=tuple(o.strip() for o in objectives.split(",")), seed=seed, workers=workers,
                          **extra)
    except ValueError as err:
        raise InputError(f"bad --budgets/--shapes ({err}): e.g. --budgets 1e10,3e10 --shapes 24x1,32x2, or "
                         "--shapes '1e10=8x1|16x1,1e11=16x1|32x2'") from err
    rows = run_sweep(load_proteins(fasta, max_sequences=max_sequences), out, cfg)
    typer.echo(f"{len(rows)} runs in {out.resolve()}; fit them with `tenfold plmscale fit {out} --law isoflop`")
