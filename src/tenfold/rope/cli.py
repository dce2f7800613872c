"""`tenfold rope ...`: generate, train, sweep (a job list), reproduce, bench."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands, seed_option
from tenfold.core.errors import check
from tenfold.core.runner import MAX_SEEDS
from tenfold.rope.tasks import MAX_COUNT, MAX_MODULUS, MAX_SIZE

app = typer.Typer(help="Depth needed vs formula size for RoPE transformers: NC1-hard vs TC0 formulas (arXiv 2411.07602).",
                  no_args_is_help=True)
add_standard_commands(app, "rope")

# sane upper bounds at the boundary: a mistyped size is refused at once instead of allocating or running for days
MAX_LAYERS = 64
MAX_WIDTH = 4096
MAX_STEPS = 1_000_000
MAX_WORKERS = 64


@app.command()
def generate(
    task: str = typer.Option("boolean", help="boolean or arithmetic."),
    size: int = typer.Option(15, min=1, max=MAX_SIZE,
                             help="Exact number of nodes (= tokens in prefix/postfix); odd without --p-not."),
    family: str = typer.Option("balanced", help="balanced (depth ~log2 size, NC1-hard) or skewed (a spine, TC0)."),
    n: int = typer.Option(100, min=1, max=MAX_COUNT, help="Number of formulas."),
    encoding: str = typer.Option("postfix", help="prefix, infix or postfix."),
    modulus: int = typer.Option(3, min=2, max=MAX_MODULUS, help="p for arithmetic mod p (ignored for boolean)."),
    p_not: float = typer.Option(0.0, help="Probability of a `not` at each Boolean node (0: and/or only)."),
    unique: bool = typer.Option(False, help="All formulas distinct."),
    seed: int = seed_option("Seed of the random formulas."),
    exclude: list[Path] = typer.Option(None, "--exclude",
                                       help="A formula file (.jsonl) none of whose formulas is drawn; repeatable: "
                                            "validation and test files disjoint from training, as `train` requires."),
    out: Path = typer.Option(..., help="FILE.jsonl: one {tokens, answer, depth, size} a line."),
) -> None:
    """Write random formulas of an exact size with their exact answers."""
    from tenfold.core.io import ensure_writable_dir
    from tenfold.core.runtime import work_starts
    from tenfold.rope.tasks import check_sized, write_jsonl
    from tenfold.rope.tasks import generate as gen

    check(math.isfinite(p_not), f"--p-not must be a probability in [0, 1), got {p_not}")
    check_sized(task, size, family, modulus, encoding, p_not)
    held_out = frozenset(r.tokens for path in exclude or () for r in _read(path, task, encoding, modulus))
    ensure_writable_dir(Path(out).parent)
    work_starts(f"drawing {n:,} formulas")
    rows = gen(task, size, n, family, encoding, modulus, seed, exclude=held_out, unique=unique, p_not=p_not)
    write_jsonl(rows, out)
    typer.echo(f"wrote {len(rows)} {family} {task} formulas of size {size} ({encoding}) to {out}")


def _read(path: Path, task: str, encoding: str, modulus: int):
    from tenfold.rope.tasks import read_jsonl

    rows = list(read_jsonl(path, task, encoding, modulus))
    check(len(rows) > 0, f"{path} holds no formulas")
    return rows


@app.command()
def train(
    data: Path = typer.Option(..., help="Training formulas of one size (.jsonl from `generate` or your own)."),
    val: Path = typer.Option(..., help="Validation formulas (.jsonl, same size): early stopping at --target."),
    test: Path = typer.Option(None, help="Test formulas (.jsonl, same size): accuracy is reported."),
    task: str = typer.Option("boolean", help="boolean or arithmetic."),
    encoding: str = typer.Option("postfix", help="Token encoding of the files."),
    modulus: int = typer.Option(3, min=2, max=MAX_MODULUS, help="p for arithmetic."),
    position: str = typer.Option("rope", help="rope, nope, absolute or alibi."),
    layers: int = typer.Option(2, min=1, max=MAX_LAYERS, help="Layers L (or loops of the shared block with --looped)."),
    width: int = typer.Option(32, min=2, max=MAX_WIDTH, help="d_model (heads of 16 dimensions)."),
    looped: bool = typer.Option(False, help="One shared block applied --layers times."),
    cot: bool = typer.Option(False, help="Train on the value of every subformula (chain of thought)."),
    steps: int = typer.Option(300, min=1, max=MAX_STEPS, help="Most training steps."),
    target: float = typer.Option(0.95, help="Stop once validation accuracy reaches this (0 < target <= 1)."),
    seed: int = seed_option("Seed of the initialisation and batch order."),
    out: Path = typer.Option(Path("rope-model"), help="Folder for model.safetensors + config.json."),
) -> None:
    """Train a formula transformer; save it; print validation (and test) accuracy. Splits must not overlap."""
    from tenfold.core.io import atomic_write_json, ensure_writable_dir, save_tensors
    from tenfold.core.runtime import pick_device, seed_everything
    from tenfold.rope.model import FormulaTransformer, ModelConfig
    from tenfold.rope.tasks import Splits, check_disjoint
    from tenfold.rope.training import (
        TrainConfig,
        answer_accuracy,
        encode_split,
        greedy_accuracy,
        train_model,
    )
    from tenfold.rope.vocab import Vocab

    check(math.isfinite(target) and 0 < target <= 1, f"--target must be an accuracy in (0, 1], got {target}")
    ensure_writable_dir(Path(out))
    seed_everything(seed)
    modulus = 2 if task == "boolean" else modulus
    vocab = Vocab.build(task, modulus)
    rows = {name: _read(path, task, encoding, modulus) for name, path in (("train", data), ("val", val), ("test", test))
            if path is not None}
    stats = check_disjoint(Splits(rows["train"], rows["val"], rows.get("test", [])))
    enc = {k: encode_split(v, vocab, cot) for k, v in rows.items()}
    cfg = ModelConfig.sized(len(vocab), width, layers, position, looped=looped)
    for name, split in enc.items():
        check(split.ids.shape[1] <= cfg.max_len,
              f"the {name} formulas ({split.prompt_len - 1} tokens) make sequences of {split.ids.shape[1]} positions "
              f"(tokens, '=', targets), more than the model's {cfg.max_len}: use shorter formulas"
              + (" or drop --cot" if cot else ""))
    model = FormulaTransformer(cfg, seed=seed)
    model = model.to(pick_device())
    loops = layers if looped else None
    fit = train_model(model, enc["train"], enc["val"], TrainConfig(steps=steps, target=target, cot=cot, seed=seed),
                      loops=loops)
    save_tensors(Path(out) / "model.safetensors", {k: v.contiguous() for k, v in model.state_dict().items()})
    atomic_write_json(Path(out) / "config.json", {"model": model.cfg.to_dict(), "task": task, "modulus": modulus,
                                                  "encoding": encoding, "cot": cot, "loops": loops})
    report = {**fit, "splits": stats, "model": str(out)}
    if "test" in enc:
        correct = greedy_accuracy(model, enc["test"], loops) if cot else answer_accuracy(model, enc["test"], loops)
        report["test_acc"] = correct.mean().item()
    typer.echo(json.dumps(report, indent=1))


@app.command()
def sweep(
    profile: str = typer.Option("quick", help="smoke, quick or full (the job list of `reproduce`)."),
    out: Path = typer.Option(Path("rope-sweep"), help="Folder: jobs/<id>.json per job, result.json and plots."),
    seed: int = seed_option("First seed (also fixes the test and validation formulas)."),
    seeds: int = typer.Option(None, min=2, max=MAX_SEEDS, help="RoPE seeds (default: the profile's; 2 or more)."),
    list_jobs: bool = typer.Option(False, "--list", help="Print the jobs, one JSON line each, and exit."),
    run_index: int = typer.Option(None, "--run-index", help="Run only job I (a scheduler's array index) and exit."),
    workers: int = typer.Option(None, min=1, max=MAX_WORKERS,
                                help="Local worker processes for the missing jobs (default: as `reproduce`, one per "
                                     "usable core, or --threads; 1 on an accelerator or for smoke)."),
    gather_only: bool = typer.Option(False, "--gather", help="Only gather finished jobs into result.json (no training)."),
) -> None:
    """The depth sweep as independent jobs: run the missing ones (or one), then gather L*(n) and the claims."""
    from tenfold.core.io import ensure_writable_dir
    from tenfold.core.jobs import job_lines, select_job
    from tenfold.core.report import claim_line
    from tenfold.core.runtime import torch_threads
    from tenfold.rope.experiment import default_workers, gather, get_profile, run_missing
    from tenfold.rope.sweeps import all_jobs, load_job, run_job

    prof = get_profile(profile)
    jobs = all_jobs(prof.sweep, seed, seeds)
    if list_jobs:
        typer.echo("\n".join(job_lines(jobs)))
        return
    ensure_writable_dir(Path(out))
    with torch_threads(1):
        if run_index is not None:
            job = select_job(jobs, run_index)
            if load_job(out, prof.sweep, job, seed) is None:
                run_job(prof.sweep, job, out, seed)
                typer.echo(f"ran {job.id}")
            else:
                typer.echo(f"{job.id} already done")
            return
        if not gather_only:
            run_missing(prof.sweep, jobs, out, seed, workers if workers is not None else default_workers(prof))
        result = gather(prof, out, seed, seeds, profile_name=profile)
    result.write(out)
    typer.echo(f"result: {(Path(out) / 'result.json').resolve()}")
    for c in result.claims:
        typer.echo(f"  {claim_line(c)}")
