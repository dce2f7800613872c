"""The depth sweep as independent jobs: one job per (task, position encoding, family, size, seed) finds the
smallest depth L (ascending over the grid, at fixed width) whose validation accuracy reaches the target;
contrast jobs train the growing-depth models (looped, chain of thought) and fixed-depth models of about
equal parameters at the largest sizes. Each job writes `jobs/<id>.json`; `gather` (experiment.py) reads them.

A job file carries a fingerprint of everything that changes its numbers, so a rerun skips exactly the
jobs that finished with the same settings (a killed sweep reruns only the missing ones).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from tenfold.core.errors import check
from tenfold.core.io import atomic_write_json, read_json
from tenfold.core.jobs import Job
from tenfold.core.runtime import pick_device
from tenfold.rope.model import POSITIONS, FormulaTransformer, ModelConfig
from tenfold.rope.tasks import FAMILIES, make_splits
from tenfold.rope.training import (
    TrainConfig,
    answer_accuracy,
    chain_accuracy,
    encode_split,
    greedy_accuracy,
    train_model,
)
from tenfold.rope.vocab import Vocab


@dataclass(frozen=True)
class ContrastSpec:
    """Growing-depth models against fixed-depth models of about the same parameter count, in distribution."""

    task: str = "boolean"
    modulus: int = 2
    sizes: tuple[int, ...] = (31,)
    seeds: int = 1
    looped_width: int = 48  # one shared block, applied loops_for_size(n) times
    cot_layers: int = 2
    cot_width: int = 32
    fixed: tuple[tuple[int, int], ...] = ((1, 48), (2, 32), (4, 24))  # (layers, width): parameters within ~12%


@dataclass(frozen=True)
class SweepSpec:
    """One profile's sweep. tasks: (task, modulus, sizes); positions: (encoding, number of seeds); task_seeds:
    (task, at most this many seeds), for a task whose every job is costly (e.g. one no L of the grid learns)."""

    tasks: tuple[tuple[str, int, tuple[int, ...]], ...]
    positions: tuple[tuple[str, int], ...]
    task_seeds: tuple[tuple[str, int], ...] = ()
    layers: tuple[int, ...] = (1, 2, 4)
    width: int = 32
    n_train: int = 3000
    n_val: int = 200
    n_test: int = 200
    train: TrainConfig = TrainConfig()
    contrast: ContrastSpec | None = None

    def __post_init__(self) -> None:
        check(all(p in POSITIONS for p, _ in self.positions), f"positions must be among {POSITIONS}")
        check(list(self.layers) == sorted(set(self.layers)) and self.layers[0] >= 1, "layers must be increasing, >= 1")


def loops_for_size(n: int) -> int:
    """Loops of the looped model at formula size n: ceil(log2 n) + 1, growing like the balanced depth."""
    return math.ceil(math.log2(max(n, 2))) + 1


def depth_jobs(spec: SweepSpec, seed: int, rope_seeds: int | None = None) -> list[Job]:
    """Every (task, position, seed, family, size) of the sweep; `rope_seeds` overrides RoPE's seed count (for every
    task, over the profile's per-task caps)."""
    out, caps = [], dict(spec.task_seeds)
    for task, modulus, sizes in spec.tasks:
        for position, n_seeds in spec.positions:
            count = rope_seeds if position == "rope" and rope_seeds is not None else min(n_seeds, caps.get(task, n_seeds))
            for s in range(seed, seed + count):
                for family in FAMILIES:
                    for n in sizes:
                        out.append(Job(f"depth-{task}-{position}-{family}-n{n}-s{s}",
                                       {"kind": "depth", "task": task, "modulus": modulus, "position": position,
                                        "family": family, "size": n, "seed": s}))
    return out


def contrast_models(c: ContrastSpec) -> list[str]:
    return ["looped", "cot", *[f"L{L}w{w}" for L, w in c.fixed]]


def contrast_jobs(spec: SweepSpec, seed: int) -> list[Job]:
    c = spec.contrast
    if c is None:
        return []
    return [Job(f"contrast-{c.task}-n{n}-{m}-s{s}", {"kind": "contrast", "task": c.task, "modulus": c.modulus,
                                                    "family": "balanced", "size": n, "model": m, "seed": s})
            for s in range(seed, seed + c.seeds) for n in c.sizes for m in contrast_models(c)]


def all_jobs(spec: SweepSpec, seed: int, rope_seeds: int | None = None) -> list[Job]:
    return depth_jobs(spec, seed, rope_seeds) + contrast_jobs(spec, seed)


JOB_FORMAT = 2  # bumped whenever a job's computation changes, so files from older code are rerun


def fingerprint(spec: SweepSpec, job: Job, eval_seed: int) -> str:
    """A hash of everything that changes the job's numbers (its parameters, the sweep settings, the split seed,
    the job code's format)."""
    relevant = {"format": JOB_FORMAT, "job": job.params, "eval_seed": eval_seed, "layers": spec.layers, "width": spec.width,
                "n": [spec.n_train, spec.n_val, spec.n_test], "train": asdict(spec.train),
                "contrast": asdict(spec.contrast) if spec.contrast and job.params["kind"] == "contrast" else None}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def job_path(folder: Path, job: Job) -> Path:
    return Path(folder) / "jobs" / f"{job.id}.json"


def load_job(folder: Path, spec: SweepSpec, job: Job, eval_seed: int) -> dict | None:
    """The job's finished result, or None when it is missing or was made with other settings."""
    path = job_path(folder, job)
    if not path.is_file():
        return None
    data = read_json(path)
    return data["result"] if isinstance(data, dict) and data.get("fingerprint") == fingerprint(spec, job, eval_seed) \
        else None


def run_job(spec: SweepSpec, job: Job, folder: Path, eval_seed: int) -> dict:
    """Run one job and write its file atomically (a killed job leaves no file, so a rerun redoes it)."""
    torch.set_num_threads(1)  # tiny models: more threads only add contention (workers run side by side)
    start = time.process_time()
    result = (_depth if job.params["kind"] == "depth" else _contrast)(spec, job.params, eval_seed)
    result["cpu_seconds"] = round(time.process_time() - start, 2)
    atomic_write_json(job_path(folder, job), {"job": job.id, "params": job.params,
                                              "fingerprint": fingerprint(spec, job, eval_seed), "result": result})
    return result


def _bits(x: torch.Tensor) -> str:
    """Per-formula correctness as a '0'/'1' string (kept for paired intervals over test formulas)."""
    return "".join("1" if v else "0" for v in x.tolist())


def _data(spec: SweepSpec, p: dict, eval_seed: int, cot: bool = False):
    vocab = Vocab.build(p["task"], p["modulus"])
    splits = make_splits(p["task"], p["size"], p["family"], spec.n_train, spec.n_val, spec.n_test, p["modulus"],
                         eval_seed=eval_seed, train_seed=p["seed"])
    stats = splits.stats()
    enc = [encode_split(rows, vocab, cot) for rows in (splits.train, splits.val, splits.test)]
    top = Counter(r.answer for r in splits.train).most_common(1)[0][0]
    info = {"splits": stats, "mean_depth": sum(r.depth for r in splits.test) / len(splits.test),
            "majority_acc": sum(r.answer == top for r in splits.test) / len(splits.test)}
    return vocab, enc, info


def _depth(spec: SweepSpec, p: dict, eval_seed: int) -> dict:
    """Train L = grid[0], grid[1], ... until validation accuracy reaches the target; record every L tried."""
    vocab, (train, val, test), info = _data(spec, p, eval_seed)
    device = pick_device()
    tried, L_star = {}, None
    for L in spec.layers:
        model = FormulaTransformer(ModelConfig.sized(len(vocab), spec.width, L, p["position"]), seed=p["seed"]).to(device)
        fit = train_model(model, train, val, replace(spec.train, seed=p["seed"]))
        correct = answer_accuracy(model, test)
        row = {**fit, "test_acc": correct.mean().item(), "test_correct": _bits(correct),
               "parameters": model.num_parameters()}
        if p["position"] == "rope" and p["family"] == "balanced":  # the precision assumption: same model in bf16
            low = answer_accuracy(model, test, dtype=torch.bfloat16)
            row.update(test_acc_bf16=low.mean().item(), test_correct_bf16=_bits(low))
        tried[str(L)] = row
        if fit["val_acc"] >= spec.train.target:
            L_star = L
            break
    return {**info, "layers": tried, "L_star": L_star}


def _contrast(spec: SweepSpec, p: dict, eval_seed: int) -> dict:
    c = spec.contrast
    cot = p["model"] == "cot"
    vocab, (train, val, test), info = _data(spec, p, eval_seed, cot=cot)
    loops = loops_for_size(p["size"]) if p["model"] == "looped" else None
    if p["model"] == "looped":
        cfg = ModelConfig.sized(len(vocab), c.looped_width, 1, "rope", looped=True)
    elif cot:
        cfg = ModelConfig.sized(len(vocab), c.cot_width, c.cot_layers, "rope")
    else:
        L, w = (int(x) for x in p["model"][1:].split("w"))
        cfg = ModelConfig.sized(len(vocab), w, L, "rope")
    model = FormulaTransformer(cfg, seed=p["seed"]).to(pick_device())
    fit = train_model(model, train, val, replace(spec.train, seed=p["seed"], cot=cot), loops=loops)
    correct = greedy_accuracy(model, test) if cot else answer_accuracy(model, test, loops)
    if cot:  # early stopping used whole-chain validation accuracy; report the answer accuracy too
        fit["val_chain_acc"] = fit["val_acc"]
        fit["val_acc"] = greedy_accuracy(model, val).mean().item()
    return {**info, **fit, "test_acc": correct.mean().item(), "test_correct": _bits(correct),
            "parameters": model.num_parameters(), "loops": loops, "layers": cfg.n_layers, "width": cfg.d_model,
            "test_chain_acc": chain_accuracy(model, test) if cot else None}
