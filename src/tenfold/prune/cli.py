"""`tenfold prune ...`: run, eval, reproduce, bench."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands, seed_option
from tenfold.core.errors import InputError

app = typer.Typer(help="Numerical pruning of autoregressive models (Shen et al., AAAI 2025): "
                       "Newton-method scores for heads/MLP channels + compensation.", no_args_is_help=True)
add_standard_commands(app, "prune")

ZOO = ("tiny-lm", "tiny-lm-long", "pixel-ar")
DIGITS = "digits"  # the pixel-ar model's data, recorded as its source corpus
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential", "cpu")  # accelerate's named maps


def _model_dir(name_or_path: str) -> Path:
    from tenfold.zoo.registry import zoo_path

    if name_or_path in ZOO:
        return zoo_path(name_or_path)
    path = Path(name_or_path)
    if not path.is_dir():
        raise InputError(f"--model {name_or_path!r} is neither a zoo model ({', '.join(ZOO)}) nor a folder")
    return path


def _is_image_model(name: str, folder: Path) -> bool:
    from tenfold.prune.experiment import source_corpus

    return name == "pixel-ar" or source_corpus(folder) == DIGITS


def _calibration(name: str, folder: Path, text: Path | None, calib: int, seq_len: int, seed: int):
    """(calibration ids, tokenizer or None, the source model's corpus or None)."""
    import torch

    from tenfold.prune.experiment import calibration_windows, source_corpus, text_split

    if _is_image_model(name, folder):
        from tenfold.zoo.pixel_ar import split_ids

        train, _ = split_ids(0)
        return train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:calib]], None, DIGITS
    from transformers import AutoTokenizer

    if not any(folder.glob("tokenizer*")):
        raise InputError(f"{folder}: no tokenizer files; calibration text needs the model's tokenizer")
    tok = AutoTokenizer.from_pretrained(folder)
    corpus = source_corpus(folder)
    if text is not None:
        from tenfold.data.text import load_text_file
        from tenfold.zoo.tiny_lm import encode_docs

        ids = encode_docs(tok, load_text_file(text).train)
    elif corpus is not None:
        ids = text_split(corpus, tok).train
    else:
        raise InputError(f"{folder} does not say which text it was trained on: pass calibration text with --text FILE")
    return calibration_windows(ids, calib, seq_len, seed), tok, corpus


def _clear_partials(out: Path) -> None:
    """Remove half-written output folders left by killed runs (their process is gone)."""
    for partial in out.parent.glob(f".{out.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(partial, ignore_errors=True)


def _publish(partial: Path, out: Path) -> None:
    """Move the finished folder into place in one rename (an existing `out` is replaced)."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, out)


@app.command("run")
def run(
    model: str = typer.Option(..., help="Zoo name (tiny-lm, tiny-lm-long, pixel-ar) or a save_pretrained folder."),
    ratio: float = typer.Option(0.3, help="Fraction of attention+MLP weights to remove, in [0, 1)."),
    method: str = typer.Option("numerical", help="numerical | magnitude | wanda-sp | flap | taylor"),
    compensation: bool = typer.Option(None, "--compensation/--no-compensation",
                                      help="The paper's compensation for any score (default: the method's own "
                                           "recipe: numerical yes, FLAP its bias, others none)."),
    allocation: str = typer.Option("auto", help="auto (the method's own) | alpha (the paper's eq. 8) | "
                                                "standardised (FLAP's) | uniform (same share per layer)."),
    clip: bool = typer.Option(False, help="numerical only: clip z to [0, 1] before eq. (7) (ours, not the paper's)."),
    calib: int = typer.Option(32, min=1, help="Calibration samples (the paper uses 128)."),
    seq_len: int = typer.Option(128, min=2, help="Tokens per calibration sample."),
    text: Path = typer.Option(None, help="Calibration text file (default: the corpus the model was trained on)."),
    device: str = typer.Option(None, help="Compute device for one layer at a time (default: where the model is)."),
    device_map: str = typer.Option(None, help="Load with accelerate's device_map (auto, balanced, sequential, cpu)."),
    offload_folder: Path = typer.Option(None, help="Folder for disk-offloaded weights (with --device-map)."),
    out: Path = typer.Option(..., help="Folder for the pruned model (never the input folder)."),
    seed: int = seed_option("Seed for the calibration windows."),
) -> None:
    """Prune a model and save it (safetensors, per-layer sizes in config.json, loadable with from_pretrained)."""
    from dataclasses import replace

    from tenfold.core.accel import device_summary
    from tenfold.core.progress import say
    from tenfold.prune.evaluate import count_parameters
    from tenfold.prune.pruner import ALLOCATIONS, PruneConfig, prune
    from tenfold.prune.surgery import load_pruned, save_pruned

    folder = _model_dir(model)
    if out.resolve() == folder.resolve():
        raise InputError("--out must differ from the model folder: the input model is never modified")
    if not 0.0 <= ratio < 1.0:
        raise InputError(f"--ratio must be in [0, 1), got {ratio}")
    if allocation != "auto" and allocation not in ALLOCATIONS:
        raise InputError(f"--allocation must be auto or one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    if clip and method != "numerical":
        raise InputError("--clip applies to the numerical score only")
    if device_map is not None and device_map not in DEVICE_MAPS:
        raise InputError(f"--device-map must be one of {', '.join(DEVICE_MAPS)}, got {device_map!r}")
    if offload_folder is not None and device_map is None:
        raise InputError("--offload-folder needs --device-map (the folder holds the weights the map puts on disk)")
    load_kwargs = {}
    if device_map is not None:
        load_kwargs = {"device_map": device_map, **({"offload_folder": str(offload_folder)} if offload_folder else {})}
    cfg = PruneConfig(allocation=None if allocation == "auto" else allocation, device=device)
    cfg = replace(cfg, numerical=replace(cfg.numerical, clip=clip))
    ids, tok, corpus = _calibration(model, folder, text, calib, seq_len, seed)
    net = load_pruned(folder, **load_kwargs)
    before = count_parameters(net)
    say(f"[prune] pruning {folder} with {method} at ratio {ratio:g} ({len(ids)} x {ids.shape[1]} calibration tokens)")
    prune(net, ids, ratio, method=method, compensate=compensation, config=cfg)
    _clear_partials(out)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    say(f"[prune] saving to {out}")
    save_pruned(net, partial, tok, source_corpus=corpus)
    _publish(partial, out)
    info = net.config.tenfold_prune
    typer.echo(json.dumps({"out": str(out), "params_before": before, "params_after": count_parameters(net),
                           "layers": info["layers"], "prune_seconds": info["info"]["prune_seconds"],
                           "loads_with_stock_class": info["stock_config_holds_sizes"]}, indent=1))
    typer.echo(device_summary(), err=True)


@app.command("eval")
def evaluate(
    model: str = typer.Option(..., help="Zoo name or a folder (pruned or dense)."),
    text: Path = typer.Option(None, help="Held-out text file, e.g. WikiText-2's wiki.test.raw (default: the "
                                         "validation split of the corpus the model, or its source, was trained on)."),
    seq_len: int = typer.Option(128, min=2, help="Perplexity window."),
    windows: int = typer.Option(100, min=1, help="Windows drawn (seeded) across the whole text."),
    seed: int = seed_option("Seed of the window draw."),
    choices: Path = typer.Option(None, help="Zero-shot multiple-choice JSONL: {context, choices, label}."),
    new_tokens: int = typer.Option(64, min=1, help="Tokens generated for the throughput measurement."),
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
    from tenfold.prune.experiment import source_corpus, text_split
    from tenfold.prune.surgery import load_pruned

    folder = _model_dir(model)
    items = load_choices(choices) if choices is not None else None
    if _is_image_model(model, folder):
        from tenfold.zoo.pixel_ar import bits_per_dim, split_ids

        net = load_pruned(folder)
        valid = split_ids(0)[1]
        res = {"model": str(folder), "text": f"digits validation split (all {len(valid)} images)",
               "bits_per_dim": bits_per_dim(net, valid)}
        prompt = valid[:1, :1]
    else:
        from transformers import AutoTokenizer

        if not any(folder.glob("tokenizer*")):
            raise InputError(f"{folder}: no tokenizer files; perplexity needs the model's tokenizer")
        tok = AutoTokenizer.from_pretrained(folder)
        if text is not None:
            from tenfold.data.text import load_text_file
            from tenfold.zoo.tiny_lm import encode_docs

            corpus = load_text_file(text)
            ids = encode_docs(tok, corpus.train + corpus.valid)  # the whole file
            where = f"the whole of {text}"
        else:
            name = source_corpus(folder)
            if name is None:
                raise InputError(f"{folder} does not say which text it was trained on, so its held-out text is "
                                 "unknown: pass --text FILE")
            ids = text_split(name, tok).valid
            where = f"the {name} validation split"
        n = min(windows, (len(ids) - 1) // seq_len)
        label = f"{where}: {n} windows of {seq_len} tokens drawn across its {len(ids):,} tokens (seed {seed})"
        typer.echo(f"[prune eval] text: {label}", err=True)
        net = load_pruned(folder)
        res = {"model": str(folder), "text": label, "perplexity": perplexity(net, ids, seq_len, windows, seed)}
        prompt = ids[:64].unsqueeze(0)
        if items is not None:
            res["multiple_choice_accuracy"] = multiple_choice_accuracy(net, tok, items)
    res.update({"params": count_parameters(net), "weight_mb": weight_bytes(net) / 2**20})
    speed = generation_throughput(net, prompt, new_tokens)
    res.update({f"generation_{k}": v for k, v in speed.items() if k != "run_seconds"})
    res["torch_threads"] = torch.get_num_threads()
    typer.echo(json.dumps(res, indent=1))
    if out is not None:
        from tenfold.core.io import atomic_write_json

        atomic_write_json(out, res)
