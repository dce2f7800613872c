"""`tenfold rope reproduce|bench`: how deep a fixed-width transformer must be to evaluate formulas of size n,
for NC1-hard (balanced) formulas and size-matched TC0 (spine) formulas, and whether growing depth helps.

The sweep runs as jobs (sweeps.py); `gather` turns the job files into the result: L*(n) per family and
position encoding, the slope of log2 L* against log2 n per seed, the looped / chain-of-thought contrast
against the best fixed-depth model of about equal parameters, and float32 vs bfloat16 evaluation.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from tenfold.core.errors import InputError, check
from tenfold.core.jobs import Job
from tenfold.core.plots import plt, save_figure
from tenfold.core.progress import progress, say
from tenfold.core.registry import MethodSpec, register
from tenfold.core.results import Result
from tenfold.core.runtime import (
    Timer,
    configure,
    pick_device,
    requested_threads,
    torch_threads,
    usable_cores,
    work_starts,
)
from tenfold.core.stats import paired_bootstrap, seed_interval
from tenfold.rope.model import POSITIONS, FormulaTransformer, ModelConfig
from tenfold.rope.sweeps import (
    ContrastSpec,
    SweepSpec,
    all_jobs,
    contrast_models,
    load_job,
    loops_for_size,
    run_job,
)
from tenfold.rope.tasks import FAMILIES
from tenfold.rope.training import TrainConfig
from tenfold.rope.vocab import Vocab

PAPER = {"title": "Circuit Complexity Bounds for RoPE-based Transformer Architecture", "arxiv": "2411.07602"}
ENCODINGS_SWEPT = ("rope", "nope", "alibi")


@dataclass(frozen=True)
class Profile:
    sweep: SweepSpec  # its positions hold the default seed counts (the slope claim's interval is over the seeds)
    parallel: bool = True  # `reproduce` runs the jobs on every usable core (one single-threaded worker each)


QUICK_BOOLEAN = ("boolean", 2, (11, 17, 33, 63))
QUICK_TRAIN = TrainConfig(steps=300, batch=64, lr=1e-2, eval_every=25)

PROFILES = {
    # seconds: the whole pipeline on tiny models (tests, `make gpu-check`)
    "smoke": Profile(SweepSpec(tasks=(("boolean", 2, (7, 15)),), positions=(("rope", 2), ("nope", 1), ("alibi", 1)),
                               layers=(1, 2), width=16, n_train=300, n_val=40, n_test=40,
                               train=TrainConfig(steps=15, batch=32, lr=1e-2, eval_every=5),
                               contrast=ContrastSpec(sizes=(15,), looped_width=32, cot_width=16, cot_layers=2,
                                                     fixed=((1, 32), (4, 16)))), parallel=False),
    # 2 CPU cores, ~4 minutes: Boolean formulas of 11..63 tokens over 6 RoPE seeds (6 agreeing seeds are what an exact
    # sign test needs at 95%), arithmetic mod 3 of 11..33 tokens over 2 seeds (no L <= 4 learns it in this budget, so
    # its jobs all run to the end), the growing-depth contrast at 63 tokens
    "quick": Profile(SweepSpec(tasks=(QUICK_BOOLEAN, ("arithmetic", 3, (11, 17, 33))), positions=(("rope", 6),),
                               task_seeds=(("arithmetic", 2),), layers=(1, 2, 4), width=32, n_train=3000, n_val=200,
                               n_test=200, train=QUICK_TRAIN, contrast=ContrastSpec(sizes=(63,)))),
    # `tenfold rope sweep` only: quick's Boolean settings for RoPE, NoPE and ALiBi over one seed (its RoPE jobs are
    # quick's, reused when run into the same folder)
    "quick-encodings": Profile(SweepSpec(tasks=(QUICK_BOOLEAN,), positions=(("rope", 1), ("nope", 1), ("alibi", 1)),
                                         layers=(1, 2, 4), width=32, n_train=3000, n_val=200, n_test=200,
                                         train=QUICK_TRAIN)),
    # a GPU (`--device cuda`), hours: both tasks, 15..255 tokens, RoPE over 6 seeds, NoPE and ALiBi over 3, contrasts at 31..255
    "full": Profile(SweepSpec(tasks=(("boolean", 2, (15, 31, 63, 127, 255)), ("arithmetic", 3, (15, 31, 63, 127, 255))),
                              positions=(("rope", 6), ("nope", 3), ("alibi", 3)), layers=(1, 2, 4, 8, 16), width=64,
                              n_train=50_000, n_val=500, n_test=1000,
                              train=TrainConfig(steps=5000, batch=128, lr=3e-3, eval_every=250),
                              contrast=ContrastSpec(sizes=(31, 63, 127, 255), seeds=3, looped_width=128, cot_layers=4,
                                                    cot_width=64, fixed=((1, 128), (4, 64), (16, 32))))),
}


def get_profile(name: str) -> Profile:
    check(name in PROFILES, f"--profile must be one of {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]


# ---------------------------------------------------------------------------------------------- running jobs

def _worker(spec: SweepSpec, job: Job, folder: Path, eval_seed: int, device: str) -> str:
    configure(device=device, threads=1)  # a spawned worker does not inherit the CLI's settings
    run_job(spec, job, folder, eval_seed)
    return job.id


def run_missing(spec: SweepSpec, jobs: list[Job], folder: Path, eval_seed: int, workers: int = 1) -> list[str]:
    """Run every job without a finished file (same fingerprint); returns the ids that ran."""
    check(workers >= 1, f"--workers must be >= 1, got {workers}")
    missing = [j for j in jobs if load_job(folder, spec, j, eval_seed) is None]
    if missing:
        work_starts(f"{len(missing)} sweep jobs")
        say(f"[rope] {len(missing)} of {len(jobs)} jobs to run ({len(jobs) - len(missing)} already done)")
    workers = min(workers, len(missing))
    if workers <= 1:
        for job in progress(missing, desc="rope jobs"):
            run_job(spec, job, folder, eval_seed)
    else:
        device = str(pick_device())
        # longest first (contrast models, then the largest formulas): no long job is left to run alone at the end
        order = sorted(missing, key=lambda j: (j.params["kind"] == "contrast", j.params["size"]), reverse=True)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_worker, spec, j, folder, eval_seed, device) for j in order]
            for f in progress(as_completed(futures), desc=f"rope jobs ({workers} workers)", total=len(futures)):
                f.result()  # a failed job stops the sweep with its error; finished job files stay
    return [j.id for j in missing]


def finished(spec: SweepSpec, jobs: list[Job], folder: Path, eval_seed: int) -> dict[str, dict]:
    """Every job's result; an InputError naming what is missing when the sweep is incomplete."""
    done = {j.id: load_job(folder, spec, j, eval_seed) for j in jobs}
    missing = [k for k, v in done.items() if v is None]
    check(not missing, f"{len(missing)} of {len(jobs)} jobs have no result in {folder}/jobs (e.g. {missing[0] if missing else ''}): "
                       "run them (--run-index I, or without --gather)")
    return done


# ---------------------------------------------------------------------------------------------- gathering

def depth_index(L_star: int | None, layers: tuple[int, ...]) -> float:
    """log2 L*, with a run that reached the target at no L counted one grid step past the deepest L."""
    return math.log2(L_star) if L_star is not None else math.log2(layers[-1]) + 1


def slope(sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of `values` against log2(size): grid steps of depth per doubling of formula size."""
    x = np.log2(np.asarray(sizes, dtype=float))
    y = np.asarray(values, dtype=float)
    return float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())


def slope_claim(result: Result, task: str, position: str, ours: list[float], reference: list[float],
                ours_name: str = "balanced", reference_name: str = "skewed", censored: bool = False) -> None:
    """Balanced slope minus control slope, paired by seed (t interval); the null is two equal families. L* lives
    on a grid, so seeds often agree exactly: the evidence line then says the interval has zero width. `censored`:
    no L of the grid reached the target for either family at any size (the grid cannot show a difference)."""
    diffs = [a - b for a, b in zip(ours, reference, strict=True)]
    what = (f"training seeds; formula sets fixed; per-seed slopes {ours_name} {', '.join(f'{v:.2f}' for v in ours)}, "
            f"{reference_name} {', '.join(f'{v:.2f}' for v in reference)}"
            + ("; every seed gives the same difference, so the t interval has zero width" if len(set(diffs)) == 1 else "")
            + ("; no L of the grid reaches the target for either family at any size, so both slopes are 0 by "
               "censoring: this budget cannot show a difference" if censored else ""))
    result.claim(f"depth_grows_faster_{ours_name}_{task}_{position}",
                 f"{task}, {position}: the depth L* a fixed-width model needs for 95% validation accuracy grows with "
                 f"formula size faster for {ours_name} formulas than for size-matched {reference_name} formulas (slope of "
                 f"log2 L* against log2 n, {ours_name} - {reference_name}; null: equal slopes, as for a family against itself)",
                 float(np.mean(ours)), float(np.mean(reference)), f"{reference_name} slope", "higher",
                 interval=seed_interval(ours, reference, what=what))


def contrast_claim(result: Result, size: int, growing: list[dict], fixed: list[dict], growing_name: str,
                   fixed_name: str) -> None:
    """The growing-depth model vs the best fixed-depth model (both chosen on validation), paired over the same
    test formulas (columns: seeds); the null is a fixed-depth model relabelled as ours."""
    ours = np.array([[int(b) for b in r["test_correct"]] for r in growing]).T  # (formulas, seeds)
    ref = np.array([[int(b) for b in r["test_correct"]] for r in fixed]).T
    result.claim(f"growing_depth_beats_fixed_n{size}",
                 f"balanced formulas of {size} tokens: the growing-depth model ({growing_name}) is more accurate than the "
                 f"best fixed-depth RoPE model of about equal parameters ({fixed_name}), both trained in distribution and "
                 "chosen on validation (null: a fixed-depth model relabelled as ours)",
                 float(ours.mean()), float(ref.mean()), fixed_name, "higher",
                 interval=paired_bootstrap(ours, ref, unit="test formula", seeds=ours.shape[1]))


def gather(prof: Profile, folder: Path, seed: int, rope_seeds: int | None = None, profile_name: str = "") -> Result:
    """Read every job file of the sweep and build the result (metrics, claims, plots)."""
    spec = prof.sweep
    jobs = all_jobs(spec, seed, rope_seeds)
    done = finished(spec, jobs, folder, seed)
    depth = [(j.params, done[j.id]) for j in jobs if j.params["kind"] == "depth"]
    contrast = [(j.params, done[j.id]) for j in jobs if j.params["kind"] == "contrast"]
    seeds_of = {}
    for p, _ in depth:
        seeds_of.setdefault((p["task"], p["position"]), set()).add(p["seed"])
    result = Result(method="rope", kind="reproduce", paper=PAPER, profile=profile_name, seed=seed,
                    seeds=sorted(seeds_of.get((spec.tasks[0][0], "rope"), {seed})),
                    config={"sweep": asdict(spec), "jobs": len(jobs), "encoding": "postfix",
                            "L_star": "smallest L of the grid (ascending, fixed width) whose validation accuracy reaches "
                                      f"{spec.train.target}; none: counted one grid step past the deepest L",
                            "looped_loops": "ceil(log2 n) + 1", "cot": "the value of every subformula in postfix order"})
    result.metrics = _metrics(spec, depth, contrast)
    for task, _, sizes in spec.tasks:
        for position in ENCODINGS_SWEPT:
            per = result.metrics["depth_index"].get(task, {}).get(position)
            if per is None or len(seeds_of[(task, position)]) < 2:
                continue
            slopes = {f: [slope(list(sizes), [per[f][str(n)][i] for n in sizes]) for i in range(len(per[f][str(sizes[0])]))]
                      for f in FAMILIES}
            reached = [L for fam in result.metrics["L_star"][task][position].values() for Ls in fam.values() for L in Ls]
            slope_claim(result, task, position, slopes["balanced"], slopes["skewed"],
                        censored=all(L is None for L in reached))
    for size, pick in result.metrics.get("contrast_choice", {}).items():
        runs = {m: [r for p, r in contrast if str(p["size"]) == size and p["model"] == m] for m in pick.values()}
        contrast_claim(result, int(size), runs[pick["growing"]], runs[pick["fixed"]], pick["growing"], pick["fixed"])
    result.artifacts = _plots(spec, result.metrics, folder)
    result.notes = [
        "synthetic data: random formulas generated here (postfix tokens); train, validation and test are disjoint as "
        "token strings (checked, metrics.train_test_overlap) and every test formula has the size of its training set.",
        "the theorem is about expressivity for all n; a finite sweep measures what tiny trained models reach in a fixed "
        "budget, which also depends on learnability (see docs/rope.md: what this can and cannot say).",
        f"L_star null (n/a in the tables): no L of the grid {list(spec.layers)} reached {spec.train.target} validation "
        "accuracy (censored); depth_index counts such a run one grid step past the deepest L.",
    ]
    return result


def _metrics(spec: SweepSpec, depth: list, contrast: list) -> dict:
    m: dict = {"train_test_overlap": 0, "train_val_overlap": 0, "val_test_overlap": 0}
    splits, acc, L_star, index, prec = {}, {}, {}, {}, {}
    for p, r in depth:
        for k in ("train_test_overlap", "train_val_overlap", "val_test_overlap"):
            m[k] = max(m[k], r["splits"][k])
        task, pos, fam, n = p["task"], p["position"], p["family"], str(p["size"])
        splits.setdefault(task, {}).setdefault(f"{fam} n={n}", {
            "test": r["splits"]["test"], "val": r["splits"]["val"], "train": r["splits"]["train"],
            "train_unique": r["splits"]["train_unique"], "train_duplicates": r["splits"]["train_duplicates"],
            "mean_depth": round(r["mean_depth"], 2), "majority_acc": r["majority_acc"]})
        for L, row in r["layers"].items():
            acc.setdefault(task, {}).setdefault(pos, {}).setdefault(fam, {}).setdefault(f"L={L}", {}) \
                .setdefault(n, []).append(row["test_acc"])
            if "test_acc_bf16" in row:
                prec.setdefault(task, {}).setdefault(f"n={n} L={L}", {"float32": [], "bfloat16": []})
                prec[task][f"n={n} L={L}"]["float32"].append(row["test_acc"])
                prec[task][f"n={n} L={L}"]["bfloat16"].append(row["test_acc_bf16"])
        L_star.setdefault(task, {}).setdefault(pos, {}).setdefault(fam, {}).setdefault(n, []).append(r["L_star"])
        index.setdefault(task, {}).setdefault(pos, {}).setdefault(fam, {}).setdefault(n, []) \
            .append(depth_index(r["L_star"], spec.layers))
    mean = _mean_leaves
    m.update(splits=splits, test_acc=mean(acc), L_star=L_star, depth_index=index, depth_index_mean=mean(index),
             precision_acc=mean(prec), precision_delta=_precision_delta(spec, depth))
    if contrast:
        m.update(_contrast_metrics(spec, contrast))
    return m


def _mean_leaves(tree):
    """Replace every list of per-seed numbers by its mean (None where nothing was measured)."""
    if isinstance(tree, dict):
        return {k: _mean_leaves(v) for k, v in tree.items()}
    vals = [v for v in tree if v is not None]
    return float(np.mean(vals)) if vals else None


def _precision_delta(spec: SweepSpec, depth: list) -> dict:
    """bfloat16 minus float32 test accuracy of the same RoPE models on balanced formulas, paired over test
    formulas, at each task's largest size (every L trained, every seed)."""
    out = {}
    for task, _, sizes in spec.tasks:
        pairs = [(row["test_correct_bf16"], row["test_correct"]) for p, r in depth
                 if p["task"] == task and p["size"] == sizes[-1] and "test_correct_bf16" in next(iter(r["layers"].values()))
                 for row in r["layers"].values()]
        if not pairs:
            continue
        low = np.array([[int(b) for b in lo] for lo, _ in pairs]).T  # (formulas, models)
        full = np.array([[int(b) for b in hi] for _, hi in pairs]).T
        iv = paired_bootstrap(low, full, unit="test formula")
        out[task] = {"size": sizes[-1], "models": len(pairs), "delta": iv.estimate, "lo": iv.lo, "hi": iv.hi}
    return out


def _contrast_metrics(spec: SweepSpec, contrast: list) -> dict:
    """Per size and model: accuracy and parameters (means over seeds); the growing-depth model and the fixed-depth
    comparator that the claim compares, each the best on validation."""
    c = spec.contrast
    table, choice = {}, {}
    for n in c.sizes:
        runs = {m: [r for p, r in contrast if p["size"] == n and p["model"] == m] for m in contrast_models(c)}
        table[f"n={n}"] = {m: {"test_acc": float(np.mean([r["test_acc"] for r in rs])),
                               "val_acc": float(np.mean([r["val_acc"] for r in rs])),
                               "parameters": rs[0]["parameters"], "loops": rs[0]["loops"]} for m, rs in runs.items()}
        val = {m: row["val_acc"] for m, row in table[f"n={n}"].items()}
        test = {m: row["test_acc"] for m, row in table[f"n={n}"].items()}
        # each side's best on validation; a validation tie among fixed models goes to the one with the higher test
        # accuracy: never in the growing model's favour (ties among growing models go to the first listed)
        choice[str(n)] = {"growing": max(("looped", "cot"), key=val.get),
                          "fixed": max(contrast_models(c)[2:], key=lambda m: (val[m], test[m]))}
    return {"contrast": table, "contrast_choice": choice}


# ---------------------------------------------------------------------------------------------- plots

def _plots(spec: SweepSpec, m: dict, folder: Path) -> list[str]:
    files = []
    for task, _, sizes in spec.tasks:
        positions = [p for p in ENCODINGS_SWEPT if p in m["depth_index"].get(task, {})]
        fig, axes = plt.subplots(1, len(positions), figsize=(3.6 * len(positions), 3.2), sharey=True, squeeze=False)
        for ax, pos in zip(axes[0], positions, strict=True):
            for fam, style in (("balanced", "o-"), ("skewed", "s--")):
                per = m["depth_index"][task][pos][fam]
                ys = np.array([per[str(n)] for n in sizes])  # (sizes, seeds)
                for s in range(ys.shape[1]):
                    ax.plot(sizes, 2 ** ys[:, s], style, alpha=0.35, color="C0" if fam == "balanced" else "C1")
                ax.plot(sizes, 2 ** ys.mean(1), style, lw=2, color="C0" if fam == "balanced" else "C1",
                        label=f"{fam} (geometric mean of {ys.shape[1]} seeds)" if ys.shape[1] > 1 else f"{fam} (1 seed)")
            ax.axhline(spec.layers[-1] * 2, color="grey", lw=0.8, ls=":")
            ax.set(xscale="log", yscale="log", xlabel="formula size n (tokens)", title=pos, xticks=sizes,
                   xticklabels=[str(n) for n in sizes])
            ax.set_yticks([*spec.layers, spec.layers[-1] * 2], [*map(str, spec.layers), "none"])
            ax.minorticks_off()
            ax.set_ylim(0.8, spec.layers[-1] * 6)  # room above the "none" line for the legend
            ax.legend(fontsize=7, loc="upper left")
        axes[0][0].set_ylabel(f"L* (smallest L with val acc >= {spec.train.target})")
        fig.suptitle(f"{task}: depth needed vs formula size (width {spec.width})", fontsize=9, y=1.02)
        files.append(save_figure(fig, folder / f"L_star_{task}.png"))
        files.append(_heatmap(m["test_acc"][task]["rope"], sizes, spec, folder / f"acc_{task}_rope.png", task))
    if "contrast" in m:
        files.append(_contrast_plot(m["contrast"], folder / "contrast.png"))
    return files


def _heatmap(acc: dict, sizes, spec: SweepSpec, path: Path, task: str) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8), sharey=True)
    for ax, fam in zip(axes, FAMILIES, strict=True):
        grid = np.array([[acc[fam].get(f"L={L}", {}).get(str(n)) or np.nan for n in sizes] for L in spec.layers])
        im = ax.imshow(grid, vmin=0.5, vmax=1, cmap="viridis", aspect="auto", origin="lower")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="w" if v < 0.75 else "k")
        ax.set(xticks=range(len(sizes)), xticklabels=sizes, yticks=range(len(spec.layers)), yticklabels=spec.layers,
               xlabel="formula size n", title=f"{fam} (RoPE, test accuracy)")
    axes[0].set_ylabel("layers L")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.suptitle(f"{task}: mean over the seeds that trained each L; '-': a shallower L already reached the target",
                 fontsize=8, y=1.02)
    return save_figure(fig, path)


def _contrast_plot(table: dict, path: Path) -> str:
    fig, axes = plt.subplots(1, len(table), figsize=(4.2 * len(table), 3.0), squeeze=False)
    for ax, (size, rows) in zip(axes[0], table.items(), strict=True):
        names = list(rows)
        ax.bar(range(len(names)), [rows[k]["test_acc"] for k in names], color=["C2", "C3"] + ["C0"] * (len(names) - 2))
        ax.set(xticks=range(len(names)), ylim=(0.4, 1.0), ylabel="test accuracy", title=f"balanced, {size}")
        ax.set_xticklabels([f"{k}\n{rows[k]['parameters'] / 1000:.0f}k" for k in names], fontsize=7)
    fig.suptitle("growing depth (looped, CoT) vs fixed depth of about equal parameters", fontsize=9, y=1.04)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------- entry points

def run_sweep(prof: Profile, folder: Path, seed: int, rope_seeds: int | None = None, workers: int = 1,
              profile_name: str = "") -> Result:
    """Run the sweep's missing jobs, then gather: resuming is rerunning."""
    jobs = all_jobs(prof.sweep, seed, rope_seeds)
    run_missing(prof.sweep, jobs, folder, seed, workers)
    return gather(prof, folder, seed, rope_seeds, profile_name)


def default_workers(prof: Profile) -> int:
    """Worker processes for `reproduce`: one per usable CPU core (the jobs are tiny single-threaded models), or
    `--threads N` when given; one on an accelerator (the device is shared) or for the smoke profile."""
    if not prof.parallel or pick_device().type != "cpu":
        return 1
    return requested_threads() or usable_cores()


def reproduce(profile: str, seed: int, out: Path, seeds: int | None = None) -> Result:
    """The sweep into OUT/jobs and the gathered result; `seeds` sets the RoPE sweep's seed count."""
    if seeds is not None and seeds < 2:
        raise InputError(f"--seeds {seeds}: the slope claim needs at least 2 RoPE seeds")
    prof = get_profile(profile)
    with torch_threads(1):  # tiny models: threads only add contention
        return run_sweep(prof, Path(out), seed, seeds, default_workers(prof), profile_name=profile)


def bench(profile: str, seed: int, out: Path) -> Result:
    """Forward time per position encoding on one batch (RoPE's rotation cost vs NoPE / ALiBi / learned absolute)."""
    get_profile(profile)
    size = {"smoke": (8, 32), "full": (256, 512)}.get(profile, (64, 128))
    vocab = Vocab.build("boolean")
    ids = torch.randint(1, len(vocab), size, generator=torch.Generator().manual_seed(seed)).to(pick_device())
    times = {}
    with torch.no_grad(), torch_threads(1):
        for pos in POSITIONS:
            model = FormulaTransformer(ModelConfig.sized(len(vocab), 64, 4, pos), seed=seed).to(ids.device)
            model(ids)
            with Timer(sync_cuda=ids.device.type == "cuda") as t:
                for _ in range(5):
                    model(ids)
            times[pos] = t.seconds / 5
    result = Result(method="rope", kind="bench", paper=PAPER, profile=profile, seed=seed,
                    config={"batch": size[0], "seq": size[1], "d_model": 64, "layers": 4, "device": str(ids.device)},
                    metrics={"forward_seconds": times, "rope_over_nope": times["rope"] / times["nope"],
                             "looped_loops_by_size": {str(n): loops_for_size(n) for n in (7, 15, 31, 63, 127, 255)}})
    result.notes = ["timings on a shared machine are noisy; no claim is attached to them."]
    return result


register(MethodSpec(name="rope", title=PAPER["title"], arxiv=PAPER["arxiv"], reproduce=reproduce, bench=bench,
                    summary="Depth needed vs formula size for NC1-hard (balanced) and TC0 (spine) formulas, RoPE vs "
                            "NoPE vs ALiBi; looped and chain-of-thought models against fixed depth; float32 vs bfloat16."))
