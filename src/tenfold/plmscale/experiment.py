"""plmscale reproduce/bench: fitter recovery on a known law, a tiny real IsoFLOP sweep (CLM vs MLM),
the paper's exponents beside ours, and (when present) the Chinchilla replication anchor."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tenfold.core.errors import InputError
from tenfold.core.registry import MethodSpec, register
from tenfold.core.results import Result

TITLE = "Training Compute-Optimal Protein Language Models"
ARXIV = "2411.02142"
CHINCHILLA_CSV = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "chinchilla_fig4_extracted.csv"


PROFILES = ("smoke", "quick", "full")  # smoke: seconds, for tests; quick: 2 CPU cores; full: hours
# the full profile's windows extrapolate the quick profile's minima (N_opt ~ C^0.6); not run on this machine
FULL_WINDOWS = (
    (1e11, ((8, 1), (12, 1), (16, 1), (24, 1), (32, 1))),
    (3e11, ((12, 1), (16, 1), (24, 1), (32, 1), (48, 1))),
    (1e12, ((16, 1), (24, 1), (32, 1), (48, 1), (64, 1))),
    (3e12, ((24, 1), (32, 1), (48, 1), (64, 1), (96, 1))),
)


def synthetic_runs(law, budgets, n_grid, noise: float, seed: int):
    """Runs (N, D = C/6N, L) on IsoFLOP lines drawn from `law` with multiplicative log-normal noise."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        n_opt = law.optimal(c)[0]
        for n in n_opt * np.logspace(-1, 1, n_grid):
            d = c / (6 * n)
            rows.append({"params": n, "tokens": d, "flops": c, "loss": float(law.loss(n, d)) * np.exp(noise * rng.standard_normal())})
    return pd.DataFrame(rows)


RECOVERY_NAMES = ("a", "b", "alpha", "beta", "E")
RECOVERY_NOISE = 0.005  # 0.5% multiplicative log-normal noise on each run's loss
MIN_COVERAGE = 0.85  # the least coverage we accept from a nominal 95% interval


def recovery(seed: int, n_datasets: int, n_boot: int, noise: float = RECOVERY_NOISE) -> dict:
    """Coverage study: `n_datasets` independent synthetic sweeps (49 runs: 7 budgets 1e17..1e20 x 7 sizes)
    from the paper's CLM parametric law (Table A9) with `noise`; fit each, bootstrap 95% percentile
    intervals, and count how often they contain the true a, b, alpha, beta, E.

    Dataset k uses seed 1000 * seed + k for both its noise and its resampling, so nothing is tuned.
    """
    from tenfold.plmscale.fit import ParametricLaw, bootstrap_parametric, fit_parametric
    from tenfold.plmscale.plan import paper_coefficients

    true = ParametricLaw(**paper_coefficients()["clm"]["parametric"])
    truth = {n: float(getattr(true, n)) for n in RECOVERY_NAMES}
    datasets = []
    for k in range(n_datasets):
        s = 1000 * seed + k
        runs = synthetic_runs(true, np.logspace(17, 20, 7), 7, noise, s)
        fit = fit_parametric(runs, top_starts=10)
        iv = bootstrap_parametric(runs, fit, n_boot=n_boot, seed=s, top_starts=0)
        datasets.append({"seed": s, "fit": {n: float(getattr(fit.law, n)) for n in RECOVERY_NAMES},
                         "intervals": {n: iv[n] for n in RECOVERY_NAMES}})
    covered = {n: [d["intervals"][n][0] <= truth[n] <= d["intervals"][n][1] for d in datasets] for n in RECOVERY_NAMES}
    est = {n: np.array([d["fit"][n] for d in datasets]) for n in RECOVERY_NAMES}
    half = {n: float(np.mean([(d["intervals"][n][1] - d["intervals"][n][0]) / 2 for d in datasets])) for n in RECOVERY_NAMES}
    return {"true": truth, "datasets": n_datasets, "n_boot": n_boot, "noise": noise, "runs_per_dataset": 49,
            "interval": "95% percentile bootstrap (runs resampled with replacement, refits to convergence)",
            "coverage": {n: float(np.mean(c)) for n, c in covered.items()},
            "coverage_all": float(np.mean([c for n in RECOVERY_NAMES for c in covered[n]])),
            "bias": {n: float(est[n].mean() - truth[n]) for n in RECOVERY_NAMES},
            "sd_across_datasets": {n: float(est[n].std(ddof=1)) if n_datasets > 1 else None for n in RECOVERY_NAMES},
            "mean_half_width": half, "first_dataset": datasets[0]}


def objective_summary(runs, n_boot: int, seed: int) -> dict:
    from tenfold.plmscale.fit import bootstrap_isoflop, fit_isoflop, heldout_rel_err, split_largest_budget

    iso = fit_isoflop(runs)
    bootstrap_isoflop(runs, iso, n_boot=n_boot, seed=seed)
    train, test = split_largest_budget(runs)
    try:
        held = heldout_rel_err(train, test, top_starts=10)
    except Exception:  # too few training runs for 5 parameters: report as missing
        held = float("nan")
    return {"a": iso.a, "b": iso.b, "a_ci": iso.intervals["a"], "b_ci": iso.intervals["b"], "heldout_rel_err": held,
            "loss_vs_compute": {"k": iso.loss.k, "p": iso.loss.p}, "budgets": iso.budgets, "fit": iso}


def _plots(out: Path, summaries: dict, runs_by_obj: dict) -> list[str]:
    from tenfold.core.plots import plt, save_figure

    names = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (obj, runs) in zip(axes, runs_by_obj.items(), strict=False):
        s = summaries[obj]
        for g in s["budgets"]:
            sub = runs[runs["budget"] == g["flops"]] if "budget" in runs.columns else \
                runs[np.isclose(np.log(runs["flops"]), np.log(g["flops"]), atol=0.05)]
            line = ax.plot(sub["params"], sub["loss"], "o", label=f"C={g['flops']:.1e}")[0]
            if g["parabola"]:
                x = np.linspace(np.log(sub["params"].min()), np.log(sub["params"].max()), 50)
                ax.plot(np.exp(x), np.polyval(g["parabola"], x), "-", color=line.get_color())
            ax.plot([g["n_opt"]], [g["loss_min"]], "k*")
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters N")
        ax.set_ylabel("validation loss")
        ax.set_title(f"{obj.upper()} IsoFLOP profiles")
        ax.legend(fontsize=7)
    names.append(save_figure(fig, out / "isoflop_profiles.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    for obj, s in summaries.items():
        c = np.array([g["flops"] for g in s["budgets"]])
        n = np.array([g["n_opt"] for g in s["budgets"]])
        ax.plot(c, n, "o", label=f"{obj.upper()} minima")
        grid = np.logspace(np.log10(c.min()), np.log10(c.max()), 20)
        ax.plot(grid, s["fit"].n_opt(grid), "-", label=f"{obj.upper()} N_opt ~ C^{s['a']:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel("N_opt")
    ax.legend(fontsize=8)
    ax.set_title("fitted compute-optimal frontiers")
    names.append(save_figure(fig, out / "frontiers.png"))
    return names


def _transfer_plot(out: Path, transfer: dict) -> str:
    from tenfold.core.plots import plt, save_figure

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for r in transfer["runs"]:
        line = axes[0].plot(r["tokens"], r["scratch_loss"], "o--", label=f"N={r['params']} scratch")[0]
        axes[0].plot(r["tokens"], r["transferred_loss"], "s-", color=line.get_color(), label=f"N={r['params']} from CLM")
        axes[1].plot(r["tokens"], r["transferred_tokens"], "s-", color=line.get_color(), label=f"N={r['params']}")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("MLM tokens D_f")
    axes[0].set_ylabel("MLM validation loss")
    axes[0].set_title("MLM learning curves: scratch vs CLM-initialised")
    axes[0].legend(fontsize=7)
    axes[1].axhline(0.0, color="grey", lw=0.8)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("MLM tokens D_f")
    axes[1].set_ylabel("effectively transferred tokens D_t")
    axes[1].set_title("D_t = D_e - D_f")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out / "transfer_curves.png")


def reproduce(profile: str, seed: int, out: Path) -> Result:
    import pandas as pd

    from tenfold.data.fasta import MMSEQS_DB, load_proteins
    from tenfold.plmscale.fit import fit_parametric, load_runs
    from tenfold.plmscale.plan import paper_coefficients
    from tenfold.plmscale.sweep import SweepConfig, config_dict, run_sweep
    from tenfold.plmscale.transfer_sweep import TransferConfig, run_transfer

    out = Path(out)
    if profile not in PROFILES:
        raise InputError(f"plmscale profiles are {', '.join(PROFILES)}, got {profile!r}")
    synthetic = profile == "smoke" or not MMSEQS_DB.is_file()
    if profile == "smoke":  # seconds: the whole pipeline on tiny models and generated proteins (tests)
        proteins = load_proteins("synthetic-proteins", max_sequences=300)
        cfg = SweepConfig(budgets=(2e7, 6e7), shapes=((4, 1), (8, 1), (12, 1)), budget_shapes=(), seq_len=32,
                          batch_size=4, valid_windows=8, seed=seed)
        n_boot, (n_datasets, n_boot_recovery) = 20, (2, 10)
        tcfg = TransferConfig(shapes=((4, 1), (8, 1)), clm_tokens=2000, mlm_tokens=4000, checkpoints=4, seq_len=32,
                              batch_size=4, valid_windows=8, seed=seed)
    else:
        proteins = load_proteins("synthetic-proteins" if synthetic else None)
        cfg = replace(SweepConfig(seed=seed, workers=2), **({} if profile == "quick" else {
            "budgets": tuple(c for c, _ in FULL_WINDOWS), "budget_shapes": FULL_WINDOWS}))
        n_boot = 100 if profile == "quick" else 1000
        n_datasets, n_boot_recovery = (16, 60) if profile == "quick" else (100, 200)
        tcfg = TransferConfig(seed=seed, workers=2) if profile == "quick" else TransferConfig(
            shapes=((12, 1), (16, 1), (24, 1), (32, 1)), clm_tokens=2e7, mlm_tokens=2e7, seed=seed, workers=2)
    rows = run_sweep(proteins, out / "runs.csv", cfg)
    frame = pd.DataFrame(rows)
    wanted = {(o, *g) for o in cfg.objectives for g in cfg.grid(o)}  # a reused runs.csv may hold other runs
    frame = frame[[(o, float(b), int(h), int(layer)) in wanted for o, h, layer, b in
                   zip(frame["objective"], frame["hidden"], frame["layers"], frame["budget"], strict=True)]]
    paper = paper_coefficients()
    summaries, runs_by_obj = {}, {}
    for obj in cfg.objectives:
        runs_by_obj[obj] = load_runs(frame[frame["objective"] == obj])
        summaries[obj] = objective_summary(runs_by_obj[obj], n_boot, seed)
    rec = recovery(seed, n_datasets, n_boot_recovery)
    transfer = run_transfer(proteins, tcfg)

    metrics = {obj: {k: v for k, v in s.items() if k not in ("fit",)} for obj, s in summaries.items()}
    metrics["paper"] = {o: {"a": paper[o]["isoflop"]["a"], "b": paper[o]["isoflop"]["b"]} for o in ("clm", "mlm")}
    metrics["recovery"] = rec
    metrics["transfer"] = transfer
    metrics["max_epochs"] = float(frame["epochs"].max())
    metrics["interior_minima"] = {obj: {f"{g['flops']:g}": g["interior"] for g in s["budgets"]}
                                  for obj, s in summaries.items()}
    if CHINCHILLA_CSV.is_file():
        chin = fit_parametric(load_runs(CHINCHILLA_CSV, drop_highest_loss=5), top_starts=10).law
        metrics["chinchilla_refit"] = {"ours": {k: getattr(chin, k) for k in ("E", "A", "B", "alpha", "beta")},
                                       "published": paper["chinchilla_replication"]["parametric"]}

    result = Result(method="plmscale", kind="reproduce", paper={"title": TITLE, "arxiv": ARXIV}, profile=profile,
                    seed=seed, config={"sweep": config_dict(cfg), "n_boot": n_boot, "corpus": proteins.name,
                                       "recovery": {"datasets": n_datasets, "n_boot": n_boot_recovery},
                                       "transfer": transfer["config"],
                                       "corpus_residues": proteins.n_residues, "huber_delta": 1e-3},
                    metrics=metrics)
    result.claim("recovers_known_exponent_a", f"over {rec['datasets']} synthetic sweeps drawn from a known law (the "
                 "paper's CLM Table A9, 0.5% noise), the 95% bootstrap interval contains the true N_opt exponent a "
                 f"in more than {MIN_COVERAGE:.0%} of them (ours = coverage)", rec["coverage"]["a"], MIN_COVERAGE,
                 "least acceptable coverage of a 95% interval", better="higher")
    result.claim("recovers_known_coefficients", "the same intervals contain the true a, b, alpha, beta and E in more "
                 f"than {MIN_COVERAGE:.0%} of all cases (ours = coverage over every coefficient and sweep)",
                 rec["coverage_all"], MIN_COVERAGE, "least acceptable coverage of a 95% interval", better="higher")
    if "clm" in summaries and "mlm" in summaries:
        result.claim("mlm_a_exceeds_clm_a", "on the tiny real sweep, MLM's optimal-N exponent exceeds CLM's "
                     "(paper: 0.776 vs 0.578)", summaries["mlm"]["a"], summaries["clm"]["a"], "CLM exponent a",
                     better="higher")
    result.notes.append(f"tiny sweep: budgets {cfg.budgets} FLOPs, models of {int(frame['params'].min())}-"
                        f"{int(frame['params'].max())} non-embedding parameters, on {proteins.name}; the paper's budgets are 1e18-1e21, so the exponents are not "
                        "expected to match: the point is a working, tested pipeline.")
    for obj, summary in summaries.items():
        edge = [f"{g['flops']:.0e} ({g['edge']} model best)" for g in summary["budgets"] if not g["interior"]]
        if edge:
            result.notes.append(f"{obj.upper()}: the IsoFLOP minimum sits at the edge of that budget's size grid at "
                                f"{', '.join(edge)}, so its exponent a = {summary['a']:.2f} partly reflects the grid; "
                                "add smaller/larger models (tenfold plmscale sweep --shapes) for a real estimate")
        else:
            result.notes.append(f"{obj.upper()}: every IsoFLOP profile has an interior minimum (the lowest-loss run "
                                "is neither the smallest nor the largest model of its budget)")
    if synthetic:
        why = "the smoke profile" if profile == "smoke" else \
            "Debian's mmseqs2-examples (real UniProt sequences) is not installed"
        result.notes.append(f"synthetic data: {why}, so the sweep ran on generated Markov-chain proteins "
                            "(tenfold data show synthetic-proteins)")
    if metrics["max_epochs"] > 1:
        result.notes.append(f"some runs repeat data ({metrics['max_epochs']:.2f} epochs); the paper's laws assume one epoch")
    result.claim("clm_init_saves_mlm_tokens", "an MLM initialised from a CLM of the same size needs fewer MLM tokens "
                 "than one trained from scratch to reach the same loss (ours = median D_t / D_f over every size and "
                 "checkpoint of the tiny transfer experiment; paper Sec. 4: transfer helps)",
                 transfer["median_d_t_over_d_f"], 0.0, "no transfer (D_t = 0)", better="higher")
    if transfer["law"] is None:
        result.notes.append(f"transfer law not fitted: {transfer['law_error']}")
    result.notes.append("transfer experiment: CLM and MLM share one ESM backbone (causal mask for CLM, bidirectional "
                        "for MLM) so every weight carries over; MLM learning curves use a constant lr after warm-up")
    result.artifacts = ["runs.csv", *_plots(out, summaries, runs_by_obj), _transfer_plot(out, transfer)]
    return result


def bench(profile: str, seed: int, out: Path) -> Result:
    """Fitter speed and accuracy on the Chinchilla data (when present) and on synthetic laws."""
    import time

    from tenfold.plmscale.fit import fit_parametric, load_runs

    result = Result(method="plmscale", kind="bench", paper={"title": TITLE, "arxiv": ARXIV}, profile=profile, seed=seed)
    starts = 10 if profile == "quick" else 4500
    metrics = {}
    if CHINCHILLA_CSV.is_file():
        runs = load_runs(CHINCHILLA_CSV, drop_highest_loss=5)
        t = time.perf_counter()
        law = fit_parametric(runs, top_starts=starts).law
        metrics["chinchilla"] = {"seconds": time.perf_counter() - t, "starts": starts,
                                 **{k: getattr(law, k) for k in ("E", "A", "B", "alpha", "beta")}}
        result.claim("chinchilla_alpha_matches", "refit alpha within 0.01 of Besiroglu et al. (0.3478)",
                     abs(law.alpha - 0.3478), 0.01, "tolerance", better="lower")
    t = time.perf_counter()
    metrics["recovery"] = recovery(seed, *((4, 20) if profile == "quick" else (40, 100)))
    metrics["recovery"]["seconds"] = time.perf_counter() - t
    result.metrics = metrics
    result.config = {"top_starts": starts}
    return result


register(MethodSpec(name="plmscale", title=TITLE, arxiv=ARXIV, reproduce=reproduce, bench=bench,
                    summary="Scaling-law fitting (IsoFLOP + parametric Huber/L-BFGS with bootstrap), compute-optimal "
                            "planning for protein CLM/MLM, CLM->MLM transfer, and tiny real IsoFLOP sweeps."))
