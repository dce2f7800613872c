"""`tenfold rope ...`: generate, train, sweep, reproduce, bench."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands
from tenfold.core.errors import check

app = typer.Typer(help="Formula evaluation vs constant-depth RoPE transformers (arXiv 2411.07602).",
                  no_args_is_help=True)
add_standard_commands(app, "rope")


@app.command()
def generate(
    task: str = typer.Option("boolean", help="boolean or arithmetic."),
    depth: int = typer.Option(3, help="Exact formula depth (a constant has depth 0)."),
    n: int = typer.Option(100, help="Number of instances."),
    encoding: str = typer.Option("prefix", help="prefix, infix or postfix."),
    modulus: int = typer.Option(5, help="p for arithmetic mod p (ignored for boolean)."),
    shape: str = typer.Option("random", help="random, balanced or skewed trees."),
    max_size: int = typer.Option(None, help="Largest number of nodes allowed."),
    seed: int = typer.Option(0, help="Seed."),
    out: Path = typer.Option(..., help="FILE.jsonl: one {tokens, answer, depth, size} a line."),
) -> None:
    """Write random formulas of an exact depth with their exact answers."""
    from tenfold.rope.tasks import generate as gen
    from tenfold.rope.tasks import write_jsonl

    modulus = 2 if task == "boolean" else modulus
    rows = gen(task, depth, n, encoding, modulus, seed, shape, max_size)
    write_jsonl(rows, out)
    typer.echo(f"wrote {len(rows)} {task} formulas of depth {depth} ({encoding}) to {out}")


def _read(path: Path, task: str, encoding: str, modulus: int):
    from tenfold.rope.tasks import read_jsonl

    rows = list(read_jsonl(path, task, encoding, modulus))
    check(len(rows) > 0, f"{path} holds no formulas")
    return rows


@app.command()
def train(
    data: Path = typer.Option(..., help="Training formulas (.jsonl from `generate` or your own)."),
    test: Path = typer.Option(None, help="Test formulas (.jsonl); accuracy is reported per depth."),
    task: str = typer.Option("boolean", help="boolean or arithmetic."),
    encoding: str = typer.Option("prefix", help="Token encoding of the files."),
    modulus: int = typer.Option(5, help="p for arithmetic."),
    position: str = typer.Option("rope", help="rope, nope, absolute or alibi."),
    layers: int = typer.Option(2, help="Layers L (or loops of the shared block with --looped)."),
    width: int = typer.Option(32, help="d_model."),
    heads: int = typer.Option(2, help="Attention heads."),
    looped: bool = typer.Option(False, help="One shared block applied depth + 2 times."),
    cot: bool = typer.Option(False, help="Train on the chain of intermediate values."),
    steps: int = typer.Option(300, help="Training steps."),
    seed: int = typer.Option(0, help="Seed."),
    out: Path = typer.Option(Path("rope-model"), help="Folder for model.safetensors + config.json."),
) -> None:
    """Train a formula transformer on a JSONL file; save it; print accuracy by depth on --test."""
    import torch

    from tenfold.core.io import atomic_write_json, save_tensors
    from tenfold.core.runtime import seed_everything, torch_threads
    from tenfold.rope.model import FormulaTransformer, ModelConfig, default_loops
    from tenfold.rope.training import TrainConfig, accuracy, train_model
    from tenfold.rope.vocab import Vocab

    seed_everything(seed)
    modulus = 2 if task == "boolean" else modulus
    vocab = Vocab.build(task, modulus)
    rows = _read(data, task, encoding, modulus)
    model = FormulaTransformer(ModelConfig(len(vocab), width, heads, layers, 2 * width, position=position, looped=looped),
                               seed=seed)
    loops = (lambda b: default_loops(max(i.depth for i in b))) if looped else None
    with torch_threads(1):  # tiny models: extra threads only add contention
        losses = train_model(model, rows, vocab, TrainConfig(steps=steps, cot=cot, seed=seed), loops=loops)
    save_tensors(Path(out) / "model.safetensors", {k: v.contiguous() for k, v in model.state_dict().items()})
    atomic_write_json(Path(out) / "config.json", {"model": model.cfg.to_dict(), "task": task, "modulus": modulus,
                                                  "encoding": encoding, "cot": cot})
    report = {"final_loss": losses[-1], "model": str(out)}
    if test is not None:
        by: dict[int, list] = {}
        for r in _read(test, task, encoding, modulus):
            by.setdefault(r.depth, []).append(r)
        with torch.no_grad():
            report["accuracy_by_depth"] = {str(d): accuracy(model, by[d], vocab, cot=cot,
                                                            loops=default_loops(d) if looped else None)
                                           for d in sorted(by)}
    typer.echo(json.dumps(report, indent=1))


@app.command()
def sweep(
    task: str = typer.Option("boolean", help="boolean or arithmetic."),
    modulus: int = typer.Option(5, help="p for arithmetic."),
    positions: str = typer.Option("rope,nope,absolute,alibi", help="Comma-separated position encodings."),
    layers: str = typer.Option("1,2,4,8", help="Comma-separated L values."),
    train_depth: int = typer.Option(2, help="Train on depths 1..D_train."),
    test_depth: int = typer.Option(6, help="Test on depths 1..D_test."),
    steps: int = typer.Option(300, help="Training steps per model."),
    seed: int = typer.Option(0, help="Seed."),
    out: Path = typer.Option(Path("rope-sweep"), help="Folder for sweep.json and the heat-map."),
) -> None:
    """Accuracy heat-map (L x test depth) for each position encoding on one task."""
    from tenfold.core.io import atomic_write_json
    from tenfold.core.runtime import torch_threads
    from tenfold.rope.experiment import _heatmaps
    from tenfold.rope.sweeps import SweepConfig, grid
    from tenfold.rope.training import TrainConfig

    modulus = 2 if task == "boolean" else modulus
    check(1 <= train_depth < test_depth, f"need 1 <= train_depth < test_depth, got {train_depth}, {test_depth}")
    try:
        Ls = [int(x) for x in layers.split(",")]
    except ValueError as err:
        raise typer.BadParameter(f"--layers must be comma-separated integers, got {layers!r}") from err
    cfg = SweepConfig(task, modulus, train_depth=train_depth, test_depth=test_depth,
                      train=TrainConfig(steps=steps, batch=48), seed=seed)
    with torch_threads(1):
        res = grid(cfg, [p.strip() for p in positions.split(",")], Ls)
    atomic_write_json(Path(out) / "sweep.json", res)
    _heatmaps(res["acc"], [str(L) for L in Ls], [str(d) for d in range(1, test_depth + 1)], train_depth,
              f"{task}: accuracy", Path(out) / "heatmap.png")
    typer.echo(json.dumps(res["acc"], indent=1))
