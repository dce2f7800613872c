"""Reproduce and bench: every score under every allocation, with and without compensation, on the zoo
LMs and the pixel-ar image model, with paired intervals over evaluation windows (or images).

The design separates what the paper's recipe bundles: the score (numerical vs the baselines), the
allocation across layers (the paper's alpha ranking, FLAP's standardised ranking, uniform) and the
compensation (the paper's least-squares update, FLAP's bias, none). Every variant removes the same
share of weights, is scored from the same dense statistics (one pass) and the same calibration
windows, and is evaluated on the same validation windows drawn across the whole split.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.registry import MethodSpec, register
from tenfold.core.results import Result

TITLE = "Numerical Pruning for Efficient Autoregressive Models"
ARXIV = "2412.12441"
PAPER = {"title": TITLE, "arxiv": ARXIV, "venue": "AAAI 2025"}
BASELINES = ("magnitude", "wanda-sp", "flap", "taylor")


@dataclass(frozen=True)
class Setting:
    lms: tuple[str, ...] = ("tiny-lm-long",)  # the first carries the claims; the others are measured beside it
    ratios: tuple[float, ...] = (0.3, 0.5)
    allocations: tuple[str, ...] = ("alpha", "standardised", "uniform")
    calib_samples: int = 32  # the paper: 128 samples of 2048 tokens
    calib_len: int = 256
    eval_windows: int = 32  # drawn (seeded) across the whole validation split
    eval_len: int = 256
    lambdas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e2, 1e3)  # x mean diag(H_l)
    image: bool = True
    image_calib: int = 128  # training images for the image model's calibration
    image_samples_per_class: int = 10
    gen_prompt: int = 64  # the paper's speed test: a 64-token input (Sec. 4.4)
    gen_new_tokens: int = 32
    gen_repeats: int = 8
    batch_size: int = 8


PROFILES = {
    "quick": Setting(),
    "full": Setting(lms=("tiny-lm-long", "tiny-lm"), calib_samples=128, calib_len=512, eval_windows=200,
                    image_samples_per_class=50, gen_new_tokens=64, gen_repeats=10),
    "smoke": Setting(ratios=(0.5,), allocations=("alpha", "uniform"), calib_samples=4, calib_len=32, eval_windows=4,
                     eval_len=32, lambdas=(0.1, 1.0, 10.0), image_calib=16, image_samples_per_class=1, gen_prompt=8,
                     gen_new_tokens=4, gen_repeats=4),
}


def _setting(profile: str) -> Setting:
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    return PROFILES[profile]


# -- text ---------------------------------------------------------------------------------------
def training_context(folder: Path) -> int | None:
    """The longest sequence a zoo LM was trained on (zoo.json), None when unknown."""
    from tenfold.core.io import read_json

    return read_json(folder / "zoo.json").get("training_context") if (folder / "zoo.json").is_file() else None


def source_corpus(folder: Path) -> str | None:
    """The corpus a model folder was trained on: zoo.json for a zoo model, the recorded source of a
    pruned one; None when the folder does not say."""
    from tenfold.core.io import read_json
    from tenfold.prune.surgery import CONFIG_KEY, read_config

    if (folder / "zoo.json").is_file():
        return read_json(folder / "zoo.json").get("corpus")
    if (folder / "config.json").is_file():
        return ((read_config(folder).get(CONFIG_KEY) or {}).get("info") or {}).get("source_corpus")
    return None


@dataclass(frozen=True)
class TextSplit:
    name: str
    train: torch.Tensor  # 1-D token ids of the training documents
    valid: torch.Tensor  # 1-D token ids of the validation documents
    shared_documents: int  # documents present in both splits (must be 0)


def text_split(corpus_name: str, tokenizer, train_docs: int = 400) -> TextSplit:
    """Training and validation token streams of a corpus (document-level split, checked disjoint)."""
    from tenfold.data.text import load_corpus
    from tenfold.zoo.tiny_lm import encode_docs

    corpus = load_corpus(corpus_name)
    shared = len(set(corpus.train) & set(corpus.valid))
    if shared:  # perplexity on text the calibration (and the zoo LM) may have seen measures recall
        raise InputError(f"corpus {corpus.name!r}: {shared} documents are in both its training and validation splits; "
                         "de-duplicate the corpus before pruning and evaluating on it")
    return TextSplit(corpus.name, encode_docs(tokenizer, corpus.train[:train_docs]),
                     encode_docs(tokenizer, corpus.valid), shared)


def calibration_windows(ids: torch.Tensor, samples: int, seq_len: int, seed: int) -> torch.Tensor:
    """`samples` random windows of `seq_len` tokens from a 1-D id stream (the paper: 128 x 2048)."""
    if len(ids) < samples * seq_len + 1:
        raise InputError(f"calibration text has {len(ids)} tokens, fewer than {samples} x {seq_len}; "
                         "give more text or lower --calib / --seq-len")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - seq_len, (samples,), generator=g)
    return torch.stack([ids[s: s + seq_len] for s in starts.tolist()])


# -- variants ------------------------------------------------------------------------------------
def variants(allocation: str) -> list[tuple[str, str, str]]:
    """(label, score, compensation) of every variant measured under one allocation; "own" is the score's
    own recipe (FLAP: its bias compensation). The best baseline is measured again with "ls" after."""
    out = [("numerical", "numerical", "ls"), ("numerical-nocomp", "numerical", "none")]
    if allocation == "alpha":
        out.append(("numerical-clip", "numerical-clip", "ls"))
    return out + [(b, b, "own") for b in BASELINES]


def _compensation(kind: str, score: str, model) -> str:
    from tenfold.prune.pruner import compensation_kind

    return compensation_kind(model, score, None) if kind == "own" else kind


def run_language(model, text: TextSplit, st: Setting, seed: int, probe: bool = True, context: int | None = None) -> dict:
    """Every variant at every ratio and allocation on one LM; per-window NLLs kept for the claims.

    Windows (calibration and evaluation) are no longer than the context the LM was trained on.
    """
    if context:
        st = replace(st, calib_len=min(st.calib_len, context), eval_len=min(st.eval_len, context))
    from tenfold.prune.diagnostics import ScoreProbe, alpha_cliff, distribution_table, lambda_sensitivity
    from tenfold.prune.evaluate import count_parameters, perplexity_of, sample_windows, window_nll
    from tenfold.prune.pruner import PruneConfig, allocate, apply_plan, score_model
    from tenfold.prune.surgery import blocks

    calib = calibration_windows(text.train, st.calib_samples, st.calib_len, seed)
    starts = sample_windows(len(text.valid), st.eval_len, st.eval_windows, seed)
    cfg = PruneConfig(batch_size=st.batch_size)
    bl = blocks(model)
    keys = {f"{r:g}": [r] * len(bl) for r in st.ratios}
    scope = ScoreProbe(st.lambdas, st.ratios) if probe else None
    t = time.process_time()
    table = score_model(model, calib, ["numerical", "numerical-clip", *BASELINES], keys, cfg, visit=scope)
    score_cpu = time.process_time() - t
    nll = {"dense": window_nll(model, text.valid, starts, st.eval_len, st.batch_size)}
    ppl, params, runs, kept = {}, {}, {}, {}
    dense_params = count_parameters(model)
    top = f"{st.ratios[-1]:g}|alpha|numerical"

    def measure(key: str, alloc: str, label: str, score: str, compensation: str) -> None:
        k = f"{key}|{alloc}|{label}"
        pruned = copy.deepcopy(model)
        plan = allocate(bl, table.scores[(score, key)], keys[key], alloc)
        runs[k] = apply_plan(pruned, plan, calib, compensation, table.means, cfg)
        nll[k] = window_nll(pruned, text.valid, starts, st.eval_len, st.batch_size)
        params[k] = count_parameters(pruned) / dense_params
        ppl.setdefault(key, {}).setdefault(alloc, {})[label] = perplexity_of(nll[k])
        if k == top:
            kept["model"] = pruned

    for key in keys:
        for alloc in st.allocations:
            for label, score, comp in variants(alloc):
                measure(key, alloc, label, score, _compensation(comp, score, model))
            best = min(BASELINES, key=lambda b: ppl[key][alloc][b])
            measure(key, alloc, f"{best}+ls", best, "ls")
    out = {
        "dense_ppl": perplexity_of(nll["dense"]),
        "ppl": ppl,
        "param_ratio": {k: round(v, 4) for k, v in params.items() if k.endswith("|numerical")},
        "eval": {"corpus": text.name, "split": "validation", "windows": len(starts), "tokens_per_window": st.eval_len,
                 "tokens": len(starts) * st.eval_len, "valid_tokens": len(text.valid), "window_seed": seed,
                 "calibration": f"{st.calib_samples} x {st.calib_len} tokens of the training split (seed {seed})",
                 "documents_in_both_splits": text.shared_documents},
        "layer_runs": {"layers": len(bl), "dense_scoring_pass": table.layer_runs,
                       "compensated_apply_pass": max(runs.values())},
        "scoring_cpu_seconds": round(score_cpu, 2),
        "_nll": nll,
        "_pruned": kept.get("model"),
    }
    if scope is not None:
        out["score_analysis"] = {
            "z_by_layer": distribution_table(scope, 1.0, st.ratios[-1]),
            "alpha_cliff": {f"{r:g}": alpha_cliff(scope, 1.0, r, allocate(bl, scope.scores(1.0, r), keys[f"{r:g}"], "alpha"),
                                                  allocate(bl, scope.scores(1.0, r), keys[f"{r:g}"], "standardised"))
                            for r in st.ratios},
            "lambda_sensitivity": lambda_sensitivity(scope, st.ratios[-1]),
        }
    return out


# -- image model ---------------------------------------------------------------------------------
def run_image(model, st: Setting, seed: int, classifier=None) -> dict:
    from tenfold.prune.pruner import PruneConfig, allocate, apply_plan, score_model
    from tenfold.prune.surgery import blocks
    from tenfold.zoo.pixel_ar import image_bits, sample_accuracy, split_ids

    train_ids, valid_ids = split_ids(0)
    g = torch.Generator().manual_seed(seed)
    calib = train_ids[torch.randperm(len(train_ids), generator=g)[: st.image_calib]]
    cfg = PruneConfig(batch_size=32)
    keys = {f"{r:g}": [r] * len(blocks(model)) for r in st.ratios}
    table = score_model(model, calib, ["numerical", *BASELINES], keys, cfg)
    bl = blocks(model)
    bits = {"dense": image_bits(model, valid_ids)}
    table_bits, acc, models = {}, {}, {}
    for key in keys:
        for alloc in ("alpha", "standardised"):
            for label, score, comp in variants(alloc):
                if score == "numerical-clip":
                    continue
                plan = allocate(bl, table.scores[(score, key)], keys[key], alloc)
                pruned = copy.deepcopy(model)
                apply_plan(pruned, plan, calib, _compensation(comp, score, pruned), table.means, cfg)
                k = f"{key}|{alloc}|{label}"
                bits[k] = image_bits(pruned, valid_ids)
                models[k] = pruned
                table_bits.setdefault(key, {}).setdefault(alloc, {})[label] = float(bits[k].mean())
    if classifier is not None:
        top = f"{st.ratios[-1]:g}"
        best = min(BASELINES, key=lambda b: table_bits[top]["alpha"][b])
        acc = {"dense": sample_accuracy(model, classifier, st.image_samples_per_class, seed)}
        for label in ("numerical", best):
            acc[f"{top}|alpha|{label}"] = sample_accuracy(models[f"{top}|alpha|{label}"], classifier,
                                                         st.image_samples_per_class, seed)
    return {"image_bits_per_dim": {"dense": float(bits["dense"].mean()), **table_bits},
            "image_sample_accuracy": acc, "image_eval": {"images": len(valid_ids), "calibration_images": len(calib)},
            "_bits": bits}


# -- throughput -------------------------------------------------------------------------------------
def throughput_pairs(dense, pruned, prompt: torch.Tensor, new_tokens: int, repeats: int) -> np.ndarray:
    """(repeats, 2) tokens/s of the pruned and the dense model, timed alternately so both see the same load."""
    from tenfold.prune.evaluate import generation_throughput

    rows = []
    for i in range(repeats):
        p = generation_throughput(pruned, prompt, new_tokens, repeats=1, warmup=int(i == 0))["tokens_per_second"]
        d = generation_throughput(dense, prompt, new_tokens, repeats=1, warmup=int(i == 0))["tokens_per_second"]
        rows.append((p, d))
    return np.asarray(rows)


# -- claims ------------------------------------------------------------------------------------------
def ppl_interval(ours_nll, reference_nll, unit: str = "validation window"):
    """95% paired-bootstrap interval of ppl(ours) - ppl(reference) over the same evaluation windows."""
    from tenfold.core.stats import paired_bootstrap

    return paired_bootstrap(np.asarray(ours_nll), np.asarray(reference_nll),
                            statistic=lambda a: float(np.exp(a.mean())), unit=unit)


def ppl_claim(result: Result, id: str, statement: str, ours_nll, reference_nll, reference_name: str,
              unit: str = "validation window") -> None:
    """A perplexity comparison (lower is better) with its paired interval."""
    ours_nll, reference_nll = np.asarray(ours_nll, dtype=float), np.asarray(reference_nll, dtype=float)
    ours, ref = float(np.exp(ours_nll.mean())), float(np.exp(reference_nll.mean()))
    result.claim(id, statement, ours, ref, reference_name, "lower", interval=ppl_interval(ours_nll, reference_nll, unit))


def bits_claim(result: Result, id: str, statement: str, ours_bits, reference_bits, reference_name: str) -> None:
    from tenfold.core.stats import paired_bootstrap

    ours_bits, reference_bits = np.asarray(ours_bits, dtype=float), np.asarray(reference_bits, dtype=float)
    result.claim(id, statement, float(ours_bits.mean()), float(reference_bits.mean()), reference_name, "lower",
                 interval=paired_bootstrap(ours_bits, reference_bits, unit="held-out image"))


def throughput_claim(result: Result, id: str, statement: str, pairs: np.ndarray, reference: float = 1.0) -> None:
    """Pruned/dense tokens-per-second ratio (higher is better) against `reference`: the geometric mean of the
    per-run ratios, with the paired t interval of the mean log ratio (over alternating timed runs) mapped back."""
    from tenfold.core.stats import Interval, seed_interval

    logs = seed_interval(np.log(pairs[:, 0]), np.log(pairs[:, 1]), what="log tokens/s, pruned vs dense")
    ratio = float(np.exp(logs.estimate))
    interval = Interval(math.exp(logs.lo) - reference, math.exp(logs.hi) - reference, ratio - reference,
                        logs.evidence.replace("seeds", "paired timed runs"))
    result.claim(id, statement, ratio, reference, f"{reference:g}x dense", "higher", interval=interval)


def language_claims(result: Result, m: dict, st: Setting, lm: str) -> None:
    nll = m["_nll"]
    for key in (f"{r:g}" for r in st.ratios):
        for alloc in st.allocations:
            row = m["ppl"][key][alloc]
            best = min(BASELINES, key=lambda b: row[b])
            ref = nll[f"{key}|{alloc}|{best}"]
            ppl_claim(result, f"numerical_below_every_baseline_{alloc}_{key}",
                      f"{lm}, ratio {key}, {alloc} allocation for every score: numerical pruning with compensation has "
                      f"lower perplexity than the best baseline ({best}, its own recipe); null: the scores tie",
                      nll[f"{key}|{alloc}|numerical"], ref, f"{best} ({alloc})")
            ppl_claim(result, f"score_alone_below_every_baseline_{alloc}_{key}",
                      f"{lm}, ratio {key}, {alloc} allocation: the numerical score without compensation is below the best "
                      f"baseline ({best}) — the score's own share; null: the scores tie",
                      nll[f"{key}|{alloc}|numerical-nocomp"], ref, f"{best} ({alloc})")
            ppl_claim(result, f"compensation_lowers_numerical_{alloc}_{key}",
                      f"{lm}, ratio {key}, {alloc} allocation: the paper's compensation lowers the numerical score's "
                      "perplexity (same removals); null: compensation does nothing",
                      nll[f"{key}|{alloc}|numerical"], nll[f"{key}|{alloc}|numerical-nocomp"], "numerical, no compensation")
            ppl_claim(result, f"numerical_below_best_baseline_with_compensation_{alloc}_{key}",
                      f"{lm}, ratio {key}, {alloc} allocation: numerical with compensation is below the baseline that is best "
                      f"under its own recipe ({best}), given the same compensation ({best}+ls) — the score's share "
                      "once both are compensated",
                      nll[f"{key}|{alloc}|numerical"], nll[f"{key}|{alloc}|{best}+ls"], f"{best}+ls ({alloc})")
        if "alpha" in st.allocations:
            for other in (a for a in st.allocations if a != "alpha"):
                ppl_claim(result, f"alpha_allocation_below_{other}_{key}",
                          f"{lm}, ratio {key}: the paper's alpha allocation gives the numerical score (with compensation) "
                          f"lower perplexity than the {other} allocation — the allocation's share; null: allocations tie",
                          nll[f"{key}|alpha|numerical"], nll[f"{key}|{other}|numerical"], f"numerical ({other})")
            ppl_claim(result, f"clipped_score_below_paper_score_{key}",
                      f"{lm}, ratio {key}, alpha allocation: z clipped to [0, 1] (ours) gives lower perplexity than the "
                      "paper's unbounded z; null: clipping changes nothing",
                      nll[f"{key}|alpha|numerical-clip"], nll[f"{key}|alpha|numerical"], "numerical (paper's z)")


def image_claims(result: Result, m: dict, st: Setting) -> None:
    bits = m["_bits"]
    for key in (f"{r:g}" for r in st.ratios):
        for alloc in ("alpha", "standardised"):
            row = m["image_bits_per_dim"][key][alloc]
            best = min(BASELINES, key=lambda b: row[b])
            bits_claim(result, f"image_numerical_below_every_baseline_{alloc}_{key}",
                       f"pixel-ar, ratio {key}, {alloc} allocation: numerical pruning with compensation has lower "
                       f"held-out bits/dim than the best baseline ({best}); null: the scores tie",
                       bits[f"{key}|{alloc}|numerical"], bits[f"{key}|{alloc}|{best}"], f"{best} ({alloc})")


# -- reproduce -------------------------------------------------------------------------------------
def _public(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith("_")}


def _plot(metrics: dict, st: Setting, out: Path) -> list[str]:
    from tenfold.core.plots import plt, save_figure

    names = []
    lm = st.lms[0]
    ppl = metrics["lm"][lm]["ppl"]
    fig, axes = plt.subplots(1, len(ppl), figsize=(5.2 * len(ppl), 3.8), squeeze=False)
    for ax, (key, by_alloc) in zip(axes[0], ppl.items(), strict=True):
        labels = list(dict.fromkeys(lab for row in by_alloc.values() for lab in row))
        xs = np.arange(len(labels))
        width = 0.8 / len(by_alloc)
        for j, (alloc, row) in enumerate(by_alloc.items()):
            ax.bar(xs + j * width, [row.get(lab, np.nan) for lab in labels], width, label=alloc)
        ax.axhline(metrics["lm"][lm]["dense_ppl"], color="k", linestyle="--", linewidth=1, label="dense")
        ax.set_xticks(xs + 0.4 - width / 2, labels, rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("perplexity (validation windows)")
        ax.set_title(f"{lm}: ratio {key}")
        ax.legend(fontsize=7)
    names.append(save_figure(fig, out / "ppl_by_allocation.png"))
    z = metrics["lm"][lm].get("score_analysis", {}).get("z_by_layer")
    if z:
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        rows = list(z)
        for j, row in enumerate(rows):
            s = z[row]
            ax.plot([s["min"], s["max"]], [j, j], color="0.7")
            ax.plot([s["q05"], s["q95"]], [j, j], color="C0", linewidth=4)
            ax.plot([s["mean"]], [j], "k|", markersize=12)
        ax.axvline(1 - st.ratios[-1], color="C3", linestyle="--", linewidth=1, label="1 - rho")
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_xscale("symlog")
        ax.set_xlabel("channel score z (range, 5-95%, mean)")
        ax.set_title(f"{lm}: numerical scores per layer at rho = {st.ratios[-1]:g}")
        ax.legend(fontsize=7)
        names.append(save_figure(fig, out / "z_by_layer.png"))
    return names


def run_reproduce(st: Setting, seed: int, out: Path, profile: str, lm_dirs: dict[str, Path] | None = None,
                  pixel_dir: Path | None = None, with_classifier: bool = True) -> Result:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tenfold.core.runtime import pick_device
    from tenfold.prune.evaluate import sample_windows
    from tenfold.zoo.registry import get_model, zoo_path

    device = pick_device()
    lm_dirs = lm_dirs or {name: zoo_path(name) for name in st.lms}
    metrics: dict = {"lm": {}}
    builds = {}
    pairs = None
    for i, name in enumerate(st.lms):
        folder = Path(lm_dirs[name])
        model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
        tok = AutoTokenizer.from_pretrained(folder)
        corpus = source_corpus(folder)
        if corpus is None:
            raise InputError(f"{folder}: no zoo.json saying which corpus the model was trained on")
        text = text_split(corpus, tok)
        metrics["lm"][name] = run_language(model, text, st, seed, probe=i == 0, context=training_context(folder))
        spec = get_model(name)
        if spec.is_built() and folder == spec.path():
            info = spec.info()
            builds[name] = {"build_seconds": info.get("build_seconds"), "valid_perplexity": info.get("valid_perplexity"),
                            "tokens_seen": info.get("tokens_seen")}
        if i == 0:
            start = int(sample_windows(len(text.valid), st.gen_prompt, 1, seed)[0])
            prompt = text.valid[start: start + st.gen_prompt].unsqueeze(0)
            pairs = throughput_pairs(model, metrics["lm"][name]["_pruned"], prompt, st.gen_new_tokens, st.gen_repeats)
    if builds:
        metrics["zoo_builds"] = builds
    if st.image:
        from tenfold.zoo.pixel_ar import load_pixel_ar

        classifier = None
        if with_classifier:
            from tenfold.zoo.digit_classifier import load_digit_classifier

            classifier = load_digit_classifier()
        metrics["image"] = run_image(load_pixel_ar(pixel_dir).to(device), st, seed, classifier)
    top = f"{st.ratios[-1]:g}"
    metrics["throughput"] = {f"{top}|pruned_tokens_per_second": pairs[:, 0].tolist(),
                             "dense_tokens_per_second": pairs[:, 1].tolist(),
                             "geometric_mean_ratio": float(np.exp(np.log(pairs[:, 0] / pairs[:, 1]).mean()))}
    result = Result(method="prune", kind="reproduce", paper=PAPER, profile=profile, seed=seed, seeds=[seed],
                    config={**asdict(st), "numerical": "Algorithm 1, T=50, lambda = mean diag(H_l)",
                            "compensation_damp": 0.01, "threads": torch.get_num_threads()},
                    metrics={})
    lead = st.lms[0]
    language_claims(result, metrics["lm"][lead], st, lead)
    if st.image:
        image_claims(result, metrics["image"], st)
    throughput_claim(result, f"numerical_{top}_generates_faster_than_dense",
                     f"{lead}: the ratio-{top} numerical model generates more tokens/s than the dense model (batch 1, "
                     "this machine); null: no speed-up (ratio 1)", pairs)
    result.metrics = {"lm": {k: _public(v) for k, v in metrics["lm"].items()},
                      **({"image": _public(metrics["image"])} if st.image else {}),
                      **{k: v for k, v in metrics.items() if k not in ("lm", "image")}}
    result.artifacts = _plot(result.metrics, st, out)
    result.notes += [
        f"{lead} (~5M params) is trained here; absolute numbers are not comparable to the paper's LLaMA-7B..70B / "
        "LlamaGen results, only the orderings and the decomposition are.",
        "Intervals: paired bootstrap over validation windows (images for pixel-ar) for one calibration draw; the "
        "calibration sample's own variability is not in them.",
        "ratio = fraction of attention+MLP weights removed under every allocation; embeddings are never pruned.",
        "throughput is measured on this machine's CPU with batch 1 (the paper: A100 GPU); a shared CPU makes it noisy.",
    ]
    return result


def reproduce(profile: str = "quick", seed: int = 0, out: Path = Path("reports/prune")) -> Result:
    """Every score x allocation x compensation on the zoo LM(s) and pixel-ar, with paired intervals."""
    return run_reproduce(_setting(profile), seed, Path(out), profile)


# -- bench -------------------------------------------------------------------------------------------
def _resident_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB, from /proc (Linux; the peak of this
    process's own address space, unlike ru_maxrss, which a forked child inherits)."""
    try:
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return math.nan, math.nan


def cost_row(layers: int, samples: int = 32, seq_len: int = 256, width: int = 256) -> dict:
    """Layer runs, CPU seconds and the memory a compensated prune adds, for a random-init LLaMA of `layers`
    layers (GPU: CUDA max allocated during the prune; CPU: peak RSS minus RSS before it). Run it in a
    fresh process: the peak is the whole process's."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tenfold.core.runtime import pick_device
    from tenfold.prune.pruner import PruneConfig, prune

    device = pick_device()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=width, intermediate_size=688 * width // 256,
                                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2))
    model = model.to(device).eval()
    dense_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    calib = torch.randint(0, 256, (samples, seq_len), generator=torch.Generator().manual_seed(0))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
    else:
        start = _resident_mb()[0]
    t = time.process_time()
    prune(model, calib, 0.3, "numerical", config=PruneConfig(batch_size=8))
    cpu = time.process_time() - t
    if device.type == "cuda":
        added, how = (torch.cuda.max_memory_allocated(device) - start) / 2**20, "CUDA max allocated - before"
    else:
        added, how = _resident_mb()[1] - start, "peak RSS - RSS before (VmHWM - VmRSS)"
    return {"layers": layers, "layer_runs": model.config.tenfold_prune["info"]["layer_runs"],
            "cpu_seconds": round(cpu, 3), "memory_added_mb": round(added, 1), "memory_measure": how,
            "dense_weights_mb": round(dense_mb, 1),
            "cached_activation_mb": round(samples * seq_len * width * 4 / 2**20, 2),
            "rerun_prefix_layer_runs": layers * (layers + 1) // 2 + layers}


def calibration_cost(layer_counts: tuple[int, ...] = (2, 4, 8, 16), samples: int = 32, seq_len: int = 256) -> list[dict]:
    """`cost_row` for each depth, each in a fresh process so that peak memory is that prune's."""
    import json
    import subprocess
    import sys

    rows = []
    for n in layer_counts:
        code = ("import json, sys, torch; from tenfold.core.runtime import configure; configure(threads=1); "
                "from tenfold.prune.experiment import cost_row; "
                f"print(json.dumps(cost_row({n}, {samples}, {seq_len})))")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800,
                             env={**os.environ, "TENFOLD_QUIET": "1"})
        if res.returncode != 0:
            raise RuntimeError(f"calibration cost run for {n} layers failed: {res.stderr[-500:]}")
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return rows


def linear_cost_claim(result: Result, cost: list[dict]) -> None:
    """Exact: how much the layer runs of a compensated prune grow from the shallowest to the deepest model,
    against the re-run-the-prefix scheme (layers 0..l again for every l)."""
    first, last = cost[0], cost[-1]
    result.claim("calibration_cost_grows_slower_than_rerunning_the_prefix",
                 f"layer runs of a compensated prune grow {last['layers'] / first['layers']:g}x in depth by less than "
                 "re-running layers 0..l for every l does (a count; null: the quadratic scheme's growth)",
                 last["layer_runs"] / first["layer_runs"],
                 last["rerun_prefix_layer_runs"] / first["rerun_prefix_layer_runs"], "re-running the prefix", "lower",
                 exact=True)


def bench(profile: str = "quick", seed: int = 0, out: Path = Path("reports/bench/prune")) -> Result:
    """Prune time per method, the pruned model's generation speed, and calibration cost vs depth.

    With `TENFOLD_PRUNE_BENCH_MODEL=/path/to/hf-model` (and a GPU), the same on that model.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tenfold.core.accel import peak_memory
    from tenfold.core.runtime import pick_device
    from tenfold.prune.evaluate import count_parameters, perplexity, weight_bytes
    from tenfold.prune.pruner import PruneConfig, prune
    from tenfold.zoo.registry import zoo_path

    st = _setting(profile)
    path = os.environ.get("TENFOLD_PRUNE_BENCH_MODEL")
    lm_dir = Path(path) if path else zoo_path(st.lms[0])
    device = pick_device()
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=dtype).to(device).eval()
    tok = AutoTokenizer.from_pretrained(lm_dir)
    corpus = source_corpus(lm_dir) or "python-topics"
    text = text_split(corpus, tok)
    calib = calibration_windows(text.train, st.calib_samples, st.calib_len, seed)
    prompt = text.valid[: st.gen_prompt].unsqueeze(0)
    ratio = st.ratios[-1]
    rows = {"dense": {"params": count_parameters(model), "weight_mb": weight_bytes(model) / 2**20,
                      "ppl": perplexity(model, text.valid, st.eval_len, st.eval_windows, seed)}}
    pairs = None
    for method in ("numerical", *BASELINES):
        pruned = copy.deepcopy(model)
        t = time.perf_counter()
        prune(pruned, calib, ratio, method=method, config=PruneConfig(batch_size=st.batch_size))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        rows[method] = {"prune_seconds": time.perf_counter() - t, "params": count_parameters(pruned),
                        "weight_mb": weight_bytes(pruned) / 2**20,
                        "ppl": perplexity(pruned, text.valid, st.eval_len, st.eval_windows, seed)}
        if method == "numerical":
            pairs = throughput_pairs(model, pruned, prompt, st.gen_new_tokens, st.gen_repeats)
        del pruned
    cost = calibration_cost() if profile != "smoke" else calibration_cost((2, 4), samples=2, seq_len=16)
    used, how = peak_memory(device)
    result = Result(method="prune", kind="bench", paper=PAPER, profile=profile, seed=seed,
                    config={"model": str(lm_dir), "device": str(device), "dtype": str(dtype), "ratio": ratio,
                            "corpus": corpus, **asdict(st)},
                    metrics={"bench": rows, "throughput_pairs": pairs.tolist(), "calibration_cost": cost,
                             "peak_memory_mb": round(used / 2**20, 1), "peak_memory_measure": how})
    throughput_claim(result, f"numerical_{ratio:g}_generates_faster_than_dense",
                     f"ratio-{ratio:g} numerical model generates more tokens/s than dense (batch 1, {device.type}); "
                     "null: ratio 1", pairs)
    linear_cost_claim(result, cost)
    return result


register(MethodSpec(
    name="prune", title=TITLE, arxiv=ARXIV, reproduce=reproduce, bench=bench,
    summary="Training-free structural pruning of decoder-only LMs/image AR models: Newton-method numerical "
            "scores for heads and MLP channels, least-squares compensation of the output projections.",
))
