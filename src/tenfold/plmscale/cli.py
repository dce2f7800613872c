"""`tenfold plmscale ...`: fit, plan, transfer, sweep (plus reproduce and bench)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from tenfold.core.commands import add_standard_commands, seed_option
from tenfold.core.errors import InputError
from tenfold.core.runtime import work_starts

MAX_BOOTSTRAP = 100_000  # resamples: each refits the law (~0.01-0.1 s), so this is hours already

app = typer.Typer(help="Compute-optimal protein language models (Cheng et al. 2024): fit scaling laws, plan budgets, "
                       "CLM->MLM transfer, IsoFLOP sweeps.", no_args_is_help=True)
add_standard_commands(app, "plmscale")


def _echo_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=float))


@app.command("fit")
def fit(
    runs: Path = typer.Argument(..., help="CSV with columns params,tokens,loss (optional flops = 6*params*tokens), or "
                                "with --paper-table the paper's released isoflop_points.csv."),
    law: str = typer.Option("parametric", help="parametric (E + A/N^alpha + B/D^beta) or isoflop (profiles + power laws)."),
    out: Path = typer.Option(None, help="Write the fit (coefficients and 95% intervals) to this JSON file."),
    bootstrap: int = typer.Option(100, min=0, max=MAX_BOOTSTRAP, help="Bootstrap resamples for the intervals (0: none)."),
    drop_highest_loss: int = typer.Option(0, min=0, max=10**6, help="Drop this many highest-loss runs first "
                                          "(Besiroglu et al. drop 5)."),
    starts: int = typer.Option(50, min=1, max=4500, help="L-BFGS-B starts: the best of Hoffmann's 4500-point grid "
                               "(4500: all)."),
    seed: int = seed_option("Bootstrap seed."),
    interval: str = typer.Option("percentile", help="Parametric bootstrap interval: percentile, basic or bca."),
    method: str = typer.Option("raw", help="IsoFLOP minimum per budget: raw (the lowest-loss run, as the paper) or "
                               "parabola (vertex in log N, Hoffmann's Approach 2)."),
    init: str = typer.Option(None, help="'paper': also fit from the paper's single start p0 = [1, 5, 10, 0.5, 0.5] "
                             "and report both optima."),
    paper_table: bool = typer.Option(False, "--paper-table", help="RUNS is the paper's released IsoFLOP table "
                                     "(objective, budget_flops, model_size_label, N_params, final_validation_loss)."),
    objective: str = typer.Option("clm", help="With --paper-table: which objective's rows (clm or mlm)."),
) -> None:
    """Fit a scaling law to a runs table; print it and optionally write FIT.json."""
    from tenfold.core.io import atomic_write_json
    from tenfold.plmscale import fit as F

    if interval not in F.INTERVAL_METHODS:
        raise InputError(f"--interval must be one of {', '.join(F.INTERVAL_METHODS)}, got {interval!r}")
    if method not in F.ISOFLOP_METHODS:
        raise InputError(f"--method must be one of {', '.join(F.ISOFLOP_METHODS)}, got {method!r}")
    if init not in (None, "paper"):
        raise InputError(f"--init must be 'paper' (the paper's single start) or left out, got {init!r}")
    if objective not in ("clm", "mlm"):
        raise InputError(f"--objective must be clm or mlm, got {objective!r}")
    if out is not None and out.is_dir():
        raise InputError(f"--out {out} is a folder: give a JSON file name")
    table = F.load_paper_isoflop_table(runs, objective) if paper_table else F.load_runs(runs, drop_highest_loss)
    work_starts("the fit")
    if law == "parametric":
        result = F.fit_parametric(table, top_starts=starts)
        if bootstrap:
            F.bootstrap_parametric(table, result, n_boot=bootstrap, seed=seed, method=interval)
        d = {**result.to_dict(), "source": str(runs)}
        if init == "paper":
            single = F.fit_parametric(table, top_starts=0, init=F.PAPER_INIT)
            d["paper_init"] = {k: v for k, v in single.to_dict().items() if k != "intervals"}
    elif law == "isoflop":
        result = F.fit_isoflop(table, method=method)
        if bootstrap:
            F.bootstrap_isoflop(table, result, n_boot=bootstrap, seed=seed)
        d = {**result.to_dict(), "source": str(runs)}
    else:
        raise InputError(f"--law must be 'parametric' or 'isoflop', got {law!r}")
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
    fit: Path = typer.Option(None, help="A FIT.json from `plmscale fit` (default: the paper's published laws); with "
                             "--transfer, the transfer_fit.json that `plmscale reproduce` writes."),
    transfer: bool = typer.Option(False, "--transfer", help="Plan the CLM -> MLM compute split: the share of the "
                                  "budget to spend on CLM pre-training before MLM (needs --objective mlm and --fit)."),
    params: float = typer.Option(None, help="With --transfer: the model size (one of the transfer fit's sizes; "
                                 "default the largest)."),
) -> None:
    """Compute-optimal model size and token count for a budget, or (--transfer) the CLM share of it."""
    import warnings

    from tenfold.plmscale.plan import budget_flops, plan_compute_split
    from tenfold.plmscale.plan import plan as make_plan

    c = budget_flops(flops, gpu_hours, gpu_flops, utilisation)
    if transfer:
        if objective != "mlm":
            raise InputError("--transfer plans CLM pre-training before an MLM: use --objective mlm")
        if fit is None:
            raise InputError("--transfer needs --fit transfer_fit.json (written by `tenfold plmscale reproduce`): the "
                             "paper's transfer-law coefficients are not published in a form we could verify")
        if params is not None and not (params == params and 0 < params < float("inf")):
            raise InputError(f"--params must be a positive number, got {params}")
        _echo_json(plan_compute_split(c, fit, params).to_dict())
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = make_plan(c, objective, fit)
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    _echo_json(p.to_dict())


@app.command("transfer")
def transfer(
    scratch: Path = typer.Argument(..., help="CSV of the from-scratch MLM learning curve: tokens,loss[,params] "
                                    "(params: one curve per model size)."),
    finetuned: Path = typer.Argument(..., help="CSV of the CLM-initialised MLM curve: tokens,loss[,params]."),
    params: float = typer.Option(None, help="Model size N when the CSV has no params column."),
) -> None:
    """Effectively transferred tokens D_t = D_e - D_f along a transferred run (and the law when sizes vary)."""
    import pandas as pd

    from tenfold.plmscale.fit import numeric_column, read_csv_table
    from tenfold.plmscale.transfer import effectively_transferred_tokens, fit_transfer_law

    if params is not None and not (params == params and 0 < params < float("inf")):
        raise InputError(f"--params must be a positive number, got {params}")
    frames = []
    for p in (scratch, finetuned):
        f = read_csv_table(p, "columns tokens,loss (a learning curve)")
        if not {"tokens", "loss"} <= set(f.columns):
            raise InputError(f"{p} lacks columns tokens,loss (found {list(f.columns)[:10]})")
        for c in ("tokens", "loss", "params"):
            if c in f.columns:
                f[c] = numeric_column(f, c, p)
                if not (np.isfinite(f[c]) & (f[c] > 0)).all():
                    raise InputError(f"{p}: column {c!r} must be finite and positive in every row")
        frames.append(f)
    s, t = frames
    n = t["params"] if "params" in t.columns else (None if params is None else pd.Series([params] * len(t)))
    if "params" in s.columns and n is not None:  # each size against its own scratch curve
        d_t = np.empty(len(t))
        for size in n.unique():
            mine, own = (n == size).to_numpy(), (s["params"] == size).to_numpy()
            if not own.any():
                raise InputError(f"{scratch} has no scratch curve for params {size:g}: give one per model size")
            d_t[mine] = effectively_transferred_tokens(t["tokens"][mine], t["loss"][mine], s["tokens"][own],
                                                       s["loss"][own])
    elif n is not None and n.nunique() > 1:
        raise InputError(f"{finetuned} holds {n.nunique()} model sizes but {scratch} has no params column: D_t needs "
                         "each size's own scratch curve (a params column in both files)")
    else:
        d_t = effectively_transferred_tokens(t["tokens"], t["loss"], s["tokens"], s["loss"])
    out = {"finetune_tokens": t["tokens"].tolist(), "transferred_tokens": d_t.tolist()}
    if n is not None and n.nunique() > 1:
        out["law"] = fit_transfer_law(t["tokens"], n, d_t).to_dict()
    _echo_json(out)


@app.command("sweep")
def sweep(
    out: Path = typer.Option(Path("plmscale-sweep"), help="Sweep folder: one file per run under OUT/runs, and "
                             "OUT/runs.csv once every run is done (rerun to resume: only missing runs train)."),
    fasta: Path = typer.Option(None, help="Protein FASTA file (default: the UniProt sample of mmseqs2-examples)."),
    budgets: str = typer.Option(None, help="Comma-separated FLOP budgets (default: the quick profile's)."),
    shapes: str = typer.Option(None, help="Comma-separated model shapes HIDDENxLAYERS for every budget (default: "
                               "the quick profile's windows per budget)."),
    objectives: str = typer.Option("clm,mlm", help="clm, mlm or both."),
    max_sequences: int = typer.Option(None, help="Use only the first N sequences."),
    seed: int = seed_option("Seed of every run's initialisation, batches and masks."),
    lr: float = typer.Option(None, help="Peak learning rate (default: the quick profile's)."),
    seq_len: int = typer.Option(128, help="Tokens per training window."),
    batch_size: int = typer.Option(16, help="Windows per optimiser step."),
    workers: int = typer.Option(1, help="Runs trained at once, one process each (results do not depend on it)."),
    flops: str = typer.Option("exact", help="How a budget becomes tokens: exact (6N plus attention and the output "
                              "layer) or 6nd (the paper's C = 6ND)."),
    list_jobs: bool = typer.Option(False, "--list", help="Print the sweep's jobs (one JSON line each) and stop."),
    run_index: int = typer.Option(None, help="Run only job I of --list (a scheduler's array task, e.g. "
                                  "$SLURM_ARRAY_TASK_ID); gather with `plmscale gather OUT`."),
) -> None:
    """Train tiny CLM/MLM models over an IsoFLOP grid, one file per run.

    --shapes applies to every budget; a window per budget is BUDGET=SHAPES|..., e.g.
    --shapes "1e10=8x1|16x1|24x1,1e11=16x1|24x1|32x2" (then --budgets is taken from it), and
    OBJ@BUDGET=SHAPES|... sets one objective's window, e.g. "clm@1e10=4x1|6x1|8x1".
    """
    from tenfold.core.jobs import job_lines
    from tenfold.data.fasta import load_proteins
    from tenfold.plmscale.sweep import FLOP_COUNTS, SweepConfig, run_sweep, sweep_jobs

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
        if any(min(s) < 1 or max(s) > 4096 for e in windows for s in e[1]) or any(min(s) < 1 or max(s) > 4096
                                                                                 for s in shape_list):
            raise ValueError("hidden sizes and layers must be between 1 and 4096")
        if not all(0 < b < 1e30 for b in budget_list):
            raise ValueError("budgets must be positive FLOP counts below 1e30")
        if not (2 <= seq_len <= 65536 and 1 <= batch_size <= 65536):
            raise ValueError("--seq-len must be in [2, 65536] and --batch-size in [1, 65536]")
        if not 1 <= workers <= 256:
            raise ValueError("--workers must be in [1, 256]")
        if lr is not None and not 0 < lr < 10:
            raise ValueError("--lr must be in (0, 10)")
        if max_sequences is not None and max_sequences < 2:
            raise ValueError("--max-sequences must be at least 2")
        if flops not in FLOP_COUNTS:
            raise ValueError(f"--flops must be one of {', '.join(FLOP_COUNTS)}")
        extra = {} if lr is None else {"lr": lr}
        cfg = SweepConfig(budgets=budget_list, shapes=shape_list, budget_shapes=windows, seq_len=seq_len,
                          batch_size=batch_size, objectives=tuple(o.strip() for o in objectives.split(",")), seed=seed,
                          workers=workers, flops=flops, **extra)
    except ValueError as err:
        raise InputError(f"bad sweep settings ({err}): e.g. --budgets 1e10,3e10 --shapes 24x1,32x2, or "
                         "--shapes '1e10=8x1|16x1,1e11=16x1|32x2'") from err
    jobs = sweep_jobs(cfg)
    if list_jobs:
        for line in job_lines(jobs):
            typer.echo(line)
        return
    from tenfold.core.io import ensure_writable_dir

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file: the sweep writes a folder (runs/ and runs.csv)")
    ensure_writable_dir(out)
    rows = run_sweep(load_proteins(fasta, max_sequences=max_sequences), out, cfg, only=run_index)
    if len(rows) == len(jobs):
        typer.echo(f"{len(rows)} runs in {(out / 'runs.csv').resolve()}; fit them with "
                   f"`tenfold plmscale fit {out / 'runs.csv'} --law isoflop`")
    else:
        typer.echo(f"{len(rows)} of {len(jobs)} runs done in {(out / 'runs').resolve()}")


@app.command("gather")
def gather(
    out: Path = typer.Argument(..., help="A sweep folder (its runs/ holds one file per finished run)."),
    method: str = typer.Option("raw", help="IsoFLOP minimum per budget: raw or parabola."),
) -> None:
    """Collect a sweep's run files into OUT/runs.csv and print each objective's IsoFLOP exponents under both
    FLOP counts."""
    import pandas as pd

    from tenfold.plmscale.fit import ISOFLOP_METHODS, fit_isoflop, load_runs
    from tenfold.plmscale.sweep import gather as collect

    if method not in ISOFLOP_METHODS:
        raise InputError(f"--method must be one of {', '.join(ISOFLOP_METHODS)}, got {method!r}")
    if not out.is_dir():
        raise InputError(f"{out} is not a sweep folder: give the --out of `tenfold plmscale sweep`")
    frame = pd.DataFrame(collect(out))
    summary = {"runs": len(frame), "csv": str((out / "runs.csv").resolve())}
    for obj, sub in frame.groupby("objective"):
        runs = load_runs(sub)
        try:
            iso = fit_isoflop(runs, method=method)
            summary[obj] = {"a": iso.a, "b": iso.b, "by_count": iso.by_count}
        except InputError as err:
            summary[obj] = {"error": str(err)}
    _echo_json(summary)
