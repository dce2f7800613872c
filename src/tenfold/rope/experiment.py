"""`tenfold rope reproduce|bench`: the constant-depth limit of RoPE transformers, measured on formulas."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from tenfold.core.plots import plt, save_figure
from tenfold.core.registry import MethodSpec, register
from tenfold.core.results import Result
from tenfold.core.runtime import Timer, torch_threads
from tenfold.rope.model import POSITIONS, FormulaTransformer, ModelConfig
from tenfold.rope.sweeps import SweepConfig, contrasts, grid
from tenfold.rope.training import TrainConfig
from tenfold.rope.vocab import Vocab

PAPER = {"title": "Circuit Complexity Bounds for RoPE-based Transformer Architecture", "arxiv": "2411.07602"}


@dataclass(frozen=True)
class Profile:
    boolean: SweepConfig
    arithmetic: SweepConfig
    layers: tuple[int, ...] = (1, 2, 4, 8)


PROFILES = {
    "quick": Profile(SweepConfig("boolean", 2), SweepConfig("arithmetic", 5)),
    "full": Profile(
        SweepConfig("boolean", 2, train_depth=4, test_depth=12, n_train_per_depth=20000, n_test_per_depth=500,
                    d_model=128, n_heads=4, train=TrainConfig(steps=5000, batch=128, lr=1e-3)),
        SweepConfig("arithmetic", 7, train_depth=4, test_depth=12, n_train_per_depth=20000, n_test_per_depth=500,
                    d_model=128, n_heads=4, train=TrainConfig(steps=5000, batch=128, lr=1e-3))),
}


def _heatmaps(acc: dict, layers: list[str], depths: list[str], train_depth: int, title: str, path: Path) -> str:
    fig, axes = plt.subplots(1, len(acc), figsize=(3.2 * len(acc), 2.8), sharey=True)
    for ax, (pos, rows) in zip(np.atleast_1d(axes), acc.items(), strict=True):
        grid = np.array([[rows[L][d] for d in depths] for L in layers])
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="lower")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w" if v < 0.6 else "k")
        ax.axvline(train_depth - 0.5, color="r", lw=1)
        ax.set(xticks=range(len(depths)), xticklabels=depths, yticks=range(len(layers)), yticklabels=layers,
               xlabel="formula depth", title=pos)
    np.atleast_1d(axes)[0].set_ylabel("layers L")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.suptitle(title + " (red line: training depth)", fontsize=9, y=1.04)
    return save_figure(fig, path)


def _lines(series: dict[str, dict[str, float]], train_depth: int, title: str, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, ys in series.items():
        ax.plot([int(d) for d in ys], list(ys.values()), "o-" if "majority" not in name else "k:", label=name)
    ax.axvline(train_depth + 0.5, color="r", lw=0.8)
    ax.set(xlabel="formula depth", ylabel="accuracy", ylim=(0, 1.02), title=title)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def reproduce(profile: str, seed: int, out: Path) -> Result:
    with torch_threads(1):  # tiny models: threads only add contention
        return _reproduce(PROFILES[profile], profile, seed, Path(out))


def _reproduce(prof: Profile, profile: str, seed: int, out: Path) -> Result:
    bcfg, acfg = replace(prof.boolean, seed=seed), replace(prof.arithmetic, seed=seed)
    layers = list(prof.layers)
    boolean = grid(bcfg, list(POSITIONS), layers, precision=True)
    arith = grid(acfg, list(POSITIONS), layers)
    extra = contrasts(bcfg)
    acc, acc_arith = boolean["acc"], arith["acc"]
    result = Result(method="rope", kind="reproduce", paper=PAPER, profile=profile, seed=seed, config={
        "boolean": asdict(bcfg), "arithmetic": asdict(acfg), "layers": layers, "positions": list(POSITIONS),
        "looped": "1 shared RoPE block, depth + 2 loops", "cot": "RoPE, 2 layers, postfix-order intermediate values"})
    result.metrics = {
        "acc": acc, "acc_arith": acc_arith, "looped_acc": extra["looped_acc"], "cot_acc": extra["cot_acc"],
        "precision_acc": boolean["precision_acc"], "majority_acc": boolean["majority"],
        "majority_acc_arith": arith["majority"],
    }
    Dt, Dmax = str(bcfg.train_depth), str(bcfg.test_depth)
    cells = [(p, L) for p in acc for L in acc[p]]
    result.claim("accuracy_falls_past_train_depth",
                 f"Boolean: mean accuracy over encodings and L at depth {Dmax} is below that at the training depth {Dt}",
                 np.mean([acc[p][L][Dmax] for p, L in cells]), np.mean([acc[p][L][Dt] for p, L in cells]),
                 f"mean accuracy at depth {Dt}", "lower")
    result.claim("arith_accuracy_falls_past_train_depth",
                 f"arithmetic mod {acfg.modulus}: mean accuracy at depth {acfg.test_depth} is below that at depth {acfg.train_depth}",
                 np.mean([acc_arith[p][L][str(acfg.test_depth)] for p, L in cells]),
                 np.mean([acc_arith[p][L][str(acfg.train_depth)] for p, L in cells]),
                 f"mean accuracy at depth {acfg.train_depth}", "lower")
    best_const = max(acc["rope"][L][Dmax] for L in acc["rope"])
    result.claim("looped_or_cot_beats_constant_depth",
                 f"Boolean, depth {Dmax}: the better of looped / chain-of-thought beats the best constant-depth RoPE model",
                 max(extra["looped_acc"][Dmax], extra["cot_acc"][Dmax]), best_const, "best constant-depth RoPE", "higher")
    depths = [str(d) for d in range(1, bcfg.test_depth + 1)]
    Ls = [str(L) for L in layers]
    top_L = Ls[-1]
    result.artifacts = [
        _heatmaps(acc, Ls, depths, bcfg.train_depth, "Boolean formula value: accuracy", out / "acc_boolean.png"),
        _heatmaps(acc_arith, Ls, [str(d) for d in range(1, acfg.test_depth + 1)], acfg.train_depth,
                  f"arithmetic mod {acfg.modulus}: accuracy", out / "acc_arith.png"),
        _lines({f"RoPE L={top_L}": acc["rope"][top_L], "RoPE L=1": acc["rope"]["1"], "looped RoPE": extra["looped_acc"],
                "chain of thought": extra["cot_acc"], "majority answer": boolean["majority"]},
               bcfg.train_depth, "Boolean: constant depth vs looped vs CoT", out / "contrasts.png"),
        _lines({f"{dt} L={L}": boolean["precision_acc"][dt][L] for dt in ("float32", "bfloat16") for L in ("1", top_L)},
               bcfg.train_depth, "RoPE models: float32 vs bfloat16 evaluation", out / "precision.png"),
    ]
    result.notes = [
        "synthetic data: random formulas generated here (postfix encoding); tiny models trained for seconds.",
        "the theorem is about expressivity (no constant-depth RoPE transformer solves these for all n unless "
        "TC0 = NC1); falling accuracy of trained tiny models past the training depth is consistent with it but "
        "is also a length-generalisation failure and cannot prove or refute it (see docs/rope.md).",
    ]
    return result


def bench(profile: str, seed: int, out: Path) -> Result:
    """Forward time per position encoding on one batch (RoPE's rotation cost vs NoPE / absolute / ALiBi)."""
    vocab = Vocab.build("boolean")
    ids = torch.randint(1, len(vocab), (64, 128), generator=torch.Generator().manual_seed(seed))
    times = {}
    with torch.no_grad():
        for pos in POSITIONS:
            model = FormulaTransformer(ModelConfig(len(vocab), 64, 4, 4, 128, position=pos), seed=seed)
            model(ids)
            with Timer() as t:
                for _ in range(5):
                    model(ids)
            times[pos] = t.seconds / 5
    result = Result(method="rope", kind="bench", paper=PAPER, profile=profile, seed=seed,
                    config={"batch": 64, "seq": 128, "d_model": 64, "layers": 4}, metrics={"forward_seconds": times})
    result.claim("rope_overhead_under_2x", "RoPE forward time is under 2x NoPE's", times["rope"], 2 * times["nope"],
                 "2 x NoPE", "lower")
    return result


register(MethodSpec(name="rope", title=PAPER["title"], arxiv=PAPER["arxiv"], reproduce=reproduce, bench=bench,
                    summary="Constant-depth RoPE transformers vs formula evaluation (NC1-complete): accuracy by depth, "
                            "looped and chain-of-thought contrasts, float32 vs bfloat16."))
