"""`tenfold prune ...`: run, eval, reproduce, bench."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands
from tenfold.core.errors import InputError

app = typer.Typer(help="Numerical pruning of autoregressive models (Shen et al., AAAI 2025): "
                       "Newton-method scores for heads/MLP channels + compensation.", no_args_is_help=True)
add_standard_commands(app, "prune")

ZOO = ("tiny-lm", "pixel-ar")


def _model_dir(name_or_path: str) -> Path:
    from tenfold.zoo.registry import zoo_path

    if name_or_path in ZOO:
        return zoo_path(name_or_path)
    path = Path(name_or_path)
    if not path.is_dir():
        raise InputError(f"--model {name_or_path!r} is neither a zoo model ({', '.join(ZOO)}) nor a folder")
    return path


def _calibration(name: str, folder: Path, text: Path | None, calib: int, seq_len: int, seed: int):
    import torch

    from tenfold.prune.experiment import calibration_windows, text_ids

    if name == "pixel-ar":
        from tenfold.zoo.pixel_ar import split_ids

        train, _ = split_ids(0)
        return train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:calib]], None
    from transformers import AutoTokenizer

    if not any(folder.glob("tokenizer*")):
        raise InputError(f"{folder}: no tokenizer files; calibration text needs the model's tokenizer")
    tok = AutoTokenizer.from_pretrained(folder)
    if text is not None:
        from tenfold.data.text import load_text_file

        corpus = load_text_file(text)
        from tenfold.zoo.tiny_lm import encode_docs

        ids = encode_docs(tok, corpus.train)
    else:
        ids, _, _ = text_ids(folder, tok)
    return calibration_windows(ids, calib, seq_len, seed), tok


@app.command("run")
def run(
    model: str = typer.Option(..., help="Zoo name (tiny-lm, pixel-ar) or a save_pretrained folder."),
    ratio: float = typer.Option(0.3, help="Fraction of attention+MLP weights to remove, in [0, 1)."),
    method: str = typer.Option("numerical", help="numerical | magnitude | wanda-sp | flap | taylor"),
    compensation: bool = typer.Option(True, "--compensation/--no-compensation", help="Compensate (numerical only)."),
    calib: int = typer.Option(32, help="Calibration samples (the paper uses 128)."),
    seq_len: int = typer.Option(128, help="Tokens per calibration sample."),
    text: Path = typer.Option(None, help="Calibration text file (default: the zoo corpus)."),
    scope: str = typer.Option("global", help="global (the paper's ranking across layers) or layer."),
    out: Path = typer.Option(..., help="Folder for the pruned model (never the input folder)."),
    seed: int = typer.Option(0, help="Seed for the calibration windows."),
) -> None:
    """Prune a model and save it with save_pretrained (per-layer sizes in config.json)."""
    from tenfold.prune.evaluate import count_parameters
    from tenfold.prune.pruner import PruneConfig, prune
    from tenfold.prune.surgery import load_pruned, save_pruned

    folder = _model_dir(model)
    if out.resolve() == folder.resolve():
        raise InputError("--out must differ from the model folder: the input model is never modified")
    if not 0.0 <= ratio < 1.0:
        raise InputError(f"--ratio must be in [0, 1), got {ratio}")
    net = load_pruned(folder)
    ids, tok = _calibration(model, folder, text, calib, seq_len, seed)
    before = count_parameters(net)
    prune(net, ids, ratio, method=method, compensate=compensation, config=PruneConfig(scope=scope))
    save_pruned(net, out, tok)
    info = net.config.tenfold_prune
    typer.echo(json.dumps({"out": str(out), "params_before": before, "params_after": count_parameters(net),
                           "layers": info["layers"], "prune_seconds": info["info"]["prune_seconds"]}, indent=1))


@app.command("eval")
def evaluate(
    model: str = typer.Option(..., help="Zoo name or a folder (pruned or dense)."),
    text: Path = typer.Option(None, help="Held-out text file, e.g. WikiText-2's wiki.test.raw (default: zoo corpus)."),
    seq_len: int = typer.Option(128, help="Perplexity window."),
    windows: int = typer.Option(100, help="At most this many windows."),
    choices: Path = typer.Option(None, help="Zero-shot multiple-choice JSONL: {context, choices, label}."),
    new_tokens: int = typer.Option(64, help="Tokens generated for the throughput measurement."),
    out: Path = typer.Option(None, help="Write the numbers to this JSON file too."),
) -> None:
    """Perplexity (or bits/dim for pixel-ar), parameters, weight memory, generation tokens/s."""
    import torch

    from tenfold.prune.evaluate import (
        count_parameters,
        generation_throughput,
        load_choices,
        multiple_choice_accuracy,
        perplexity,
        weight_bytes,
    )
    from tenfold.prune.surgery import load_pruned

    folder = _model_dir(model)
    net = load_pruned(folder)
    res = {"model": str(folder), "params": count_parameters(net), "weight_mb": weight_bytes(net) / 2**20}
    if model == "pixel-ar" or getattr(net.config, "vocab_size", 0) == 27 and not any(folder.glob("tokenizer*")):
        from tenfold.zoo.pixel_ar import bits_per_dim, split_ids

        res["bits_per_dim"] = bits_per_dim(net, split_ids(0)[1])
        prompt = split_ids(0)[1][:1, :1]
    else:
        from transformers import AutoTokenizer

        from tenfold.prune.experiment import text_ids

        tok = AutoTokenizer.from_pretrained(folder)
        if text is not None:
            from tenfold.data.text import load_text_file
            from tenfold.zoo.tiny_lm import encode_docs

            corpus = load_text_file(text)
            ids = encode_docs(tok, corpus.train + corpus.valid)  # the whole file
        else:
            ids = text_ids(folder, tok)[1]
        res["perplexity"] = perplexity(net, ids, seq_len, windows)
        prompt = ids[:64].unsqueeze(0)
        if choices is not None:
            res["multiple_choice_accuracy"] = multiple_choice_accuracy(net, tok, load_choices(choices))
    res.update({f"generation_{k}": v for k, v in generation_throughput(net, prompt, new_tokens).items()})
    res["torch_threads"] = torch.get_num_threads()
    typer.echo(json.dumps(res, indent=1))
    if out is not None:
        from tenfold.core.io import atomic_write_json

        atomic_write_json(out, res)
