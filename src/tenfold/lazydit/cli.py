"""`tenfold lazydit ...`: train lazy gates, sample and evaluate a DiT (a saved diffusers DiTPipeline, a bare
DiT transformer folder, or the zoo's tiny-dit) with LazyDiT skipping."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands, seed_option
from tenfold.core.errors import InputError, UnsupportedError

app = typer.Typer(help="LazyDiT (AAAI 2025): learned gates skip DiT attention/MLP work by reusing the previous step.",
                  no_args_is_help=True)
add_standard_commands(app, "lazydit")

PIPELINE_HELP = "A diffusers DiTPipeline save_pretrained folder (transformer + VAE + DDIM scheduler)."
MODEL_HELP = "A bare DiTTransformer2DModel save_pretrained folder in pixel space (default: the zoo's tiny-dit)."
MAX_ITERS = 1_000_000  # training iterations beyond this are a typo, not a run
MAX_BATCH = 4096  # a global gate-training batch (the authors: 64 per GPU x 8 GPUs = 512)
MAX_GRID = 100  # `sample` draws at most this many classes x this many samples each (one PNG grid)
MAX_EVAL = 10_000  # `evaluate` draws at most this many samples per digit (100,000 in all)
SAMPLING_BATCH = 1000  # images denoised together: memory stays flat however many are asked for
MAX_RHO, MAX_LR = 100.0, 1.0  # the paper uses rho 1e-7 and lr 1e-4; far beyond these the gates only saturate


def _pipeline(pipeline: Path | None, model: Path | None, scheduler: str):
    """The LazyDiTPipeline of --pipeline, --model, or the zoo's tiny-dit, on the chosen device."""
    from tenfold.core.runtime import pick_device
    from tenfold.lazydit.dit import LazyDiTPipeline
    from tenfold.zoo.tiny_dit import load_tiny_dit

    if scheduler.lower() != "ddim":
        raise UnsupportedError(f"scheduler {scheduler!r} is not supported: LazyDiT's gates are trained per DDIM step; "
                               "use --scheduler ddim (any DDPM-trained DiT can be sampled with DDIM)")
    if pipeline is not None and model is not None:
        raise InputError("give --pipeline (a DiTPipeline folder) or --model (a bare DiT folder), not both")
    pipe = LazyDiTPipeline.from_pretrained(pipeline) if pipeline is not None else LazyDiTPipeline(*load_tiny_dit(model))
    device = pick_device()
    pipe.transformer.to(device)
    if pipe.vae is not None:
        pipe.vae.to(device)
    return pipe


def _check_steps(steps: int, pipe, least: int = 1) -> int:
    most = pipe.scheduler.config.num_train_timesteps
    if not least <= steps <= most:
        raise InputError(f"--steps must be in [{least}, {most}] (the scheduler's training steps), got {steps}")
    return steps


def _check_count(name: str, value: int, least: int = 1, most: int = MAX_ITERS) -> int:
    if not least <= value <= most:
        raise InputError(f"--{name} must be in [{least}, {most:,}], got {value}")
    return value


def _check_rate(name: str, value: float, most: float, positive: bool = False) -> float:
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0) and value <= most):
        raise InputError(f"--{name} must be a finite number in {'(' if positive else '['}0, {most:g}], got {value}")
    return value


def _gates(path: Path | None, steps: int, transformer):
    if path is None:
        return None
    from tenfold.lazydit.dit import dit_blocks, inner_dim
    from tenfold.lazydit.gates import LazyGates

    gates = LazyGates.load(path)
    if gates.num_layers != len(dit_blocks(transformer)) or gates.dim != inner_dim(transformer):
        raise InputError(f"gates {path} are for {gates.num_layers} blocks of width {gates.dim}, which does not match "
                         "this DiT: train gates for this model with `tenfold lazydit train-gates`")
    if gates.num_steps != steps:
        raise InputError(f"gates {path} were trained for {gates.num_steps} DDIM steps: pass --steps {gates.num_steps}")
    return gates


def _classes(text: str, pipe) -> list[int]:
    try:
        classes = [int(c) for c in text.split(",") if c.strip()]
    except ValueError as err:
        raise InputError(f"--classes must be comma-separated integers, got {text!r}") from err
    pipe.labels(classes)  # range check against the model's classes
    return classes


def _images(path: Path | None, pipe):
    """(images in [0, 1], labels): a safetensors file with 'images' (n, C, H, W) and 'labels', or the digits'
    training split for a pixel-space DiT at 8x8 or 16x16."""
    import torch

    if path is None:
        from tenfold.data.images import load_digits

        size = pipe.transformer.config.sample_size
        if pipe.vae is not None or size not in (8, 16) or pipe.transformer.config.in_channels != 1:
            raise InputError("this DiT is not a one-channel 8x8 or 16x16 pixel model, so the digits cannot train its "
                             "gates: pass --images FILE (safetensors with 'images' (n, C, H, W) in [0, 1] and 'labels')")
        train, _ = load_digits(size=size).split(0.2, seed=0)
        return train.images, train.labels
    from tenfold.core.io import load_tensors

    t = load_tensors(path)
    if not {"images", "labels"} <= set(t) or t["images"].ndim != 4 or t["labels"].ndim != 1:
        raise InputError(f"{path} must hold tensors 'images' (n, C, H, W) in [0, 1] and 'labels' (n,)")
    images, labels = t["images"].float(), t["labels"].long()
    if len(images) != len(labels) or len(images) == 0:
        raise InputError(f"{path} holds {len(images)} images but {len(labels)} labels: they must match one to one")
    if not (torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
        raise InputError(f"{path}: images must be finite and in [0, 1]")
    pipe.labels(labels)
    if pipe.vae is not None:
        scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        expected = (pipe.vae.config.in_channels, pipe.transformer.config.sample_size * scale)
        if images.shape[1] != expected[0] or images.shape[2:] != (expected[1], expected[1]):
            raise InputError(f"{path}: images have shape {tuple(images.shape[1:])} but this pipeline's VAE takes "
                             f"({expected[0]}, {expected[1]}, {expected[1]})")
    return images, labels


@app.command("train-gates")
def train_gates_cmd(
    out: Path = typer.Option(Path("lazydit_gates.safetensors"), help="Where to write the trained gates."),
    pipeline: Path = typer.Option(None, help=PIPELINE_HELP),
    model: Path = typer.Option(None, help=MODEL_HELP),
    images: Path = typer.Option(None, help="safetensors with 'images' (n,C,H,W) in [0,1] and 'labels'; default digits."),
    steps: int = typer.Option(20, help="DDIM steps the gates are trained for."),
    iters: int = typer.Option(500, help="Training iterations (authors' run script: 500)."),
    batch: int = typer.Option(64, help="Global batch size (authors: 64 per GPU)."),
    lr: float = typer.Option(1e-4, help="AdamW learning rate (authors' run script: 1e-4)."),
    rho: float = typer.Option(1e-7, help="Laziness penalty ratio, MHSA and feedforward (authors: 1e-7 for DiT-XL/2 "
                              "latents); larger skips more: tune it on validation for your model."),
    objective: str = typer.Option("one-step", help="'one-step': the paper's loss at the step after a recorded one; "
                                  "'end-point': ours, a rolled-out window judged on its clean-image estimate."),
    pattern: str = typer.Option("alternate", help="'alternate': the authors' every-other-step gates (t = 2k + 1); "
                                "'every': gates at every step but the first."),
    window: int = typer.Option(1, help="Lazy steps per training sample (end-point objective; one-step uses 1)."),
    checkpointing: bool = typer.Option(False, help="Gradient checkpointing of each rolled-out step (long windows)."),
    threshold: float = typer.Option(0.5, help="Skip threshold on s, in (0, 1)."),
    scheduler: str = typer.Option("ddim", help="Sampler (only ddim is supported)."),
    checkpoint_dir: Path = typer.Option(None, help="Save progress here and resume from it (default: OUT.ckpt)."),
    save_every: int = typer.Option(25, help="Iterations between checkpoints."),
    seed: int = seed_option("Seed of the training batches, noise and timesteps."),
) -> None:
    """Train the lazy learning layers (DiT frozen) and save them as safetensors; resumes when interrupted."""
    import shutil

    import torch

    from tenfold.core.io import ensure_writable_dir
    from tenfold.lazydit.gates import LazyConfig, LazyGates
    from tenfold.lazydit.train import train_gates

    _check_count("iters", iters, least=0)
    _check_count("batch", batch, most=MAX_BATCH)
    _check_count("save-every", save_every)
    _check_count("window", window, most=1000)
    config = LazyConfig(threshold=threshold, rho_attn=_check_rate("rho", rho, MAX_RHO), rho_mlp=rho,
                        lr=_check_rate("lr", lr, MAX_LR, positive=True),
                        train_iters=iters, batch_size=batch, objective=objective, pattern=pattern, window=window,
                        checkpointing=checkpointing)
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    folder = checkpoint_dir or out.with_name(out.name + ".ckpt")
    ensure_writable_dir(folder)
    pipe = _pipeline(pipeline, model, scheduler)
    _check_steps(steps, pipe, least=2)
    if window > steps - 1:
        raise InputError(f"--window must be at most {steps - 1} (the lazy steps after the first of {steps}), got {window}")
    x, y = _images(images, pipe)
    x0 = pipe.encode(x, generator=torch.Generator().manual_seed(seed))
    gates = LazyGates.for_model(pipe.transformer, steps, pattern)
    history = train_gates(pipe.transformer, pipe.scheduler, gates, x0, y, config, seed=seed, checkpoint_dir=folder,
                          save_every=save_every)
    gates.save(out)
    if checkpoint_dir is None:
        shutil.rmtree(folder, ignore_errors=True)
    typer.echo(json.dumps({"gates": str(out), **history.summary()}, indent=2))


def _run_sampler(pipe, gates, steps: int, threshold: float, guidance: float, labels, seed: int):
    """Sample `labels` with optional LazyDiT gates; the result as (n, C, H, W) in [0, 1] and its cost figures."""
    import torch

    from tenfold.core.runtime import work_starts
    from tenfold.lazydit.gates import check_threshold

    check_threshold(threshold)
    _check_rate("guidance-scale", guidance, 100)
    policy = _gates(gates, steps, pipe.transformer)
    work_starts("sampling")
    res = pipe(labels, steps, guidance_scale=guidance, generator=torch.Generator().manual_seed(seed), output_type="pt",
               gates=policy, threshold=threshold, batch_size=SAMPLING_BATCH)
    costs = {"skip_fraction": res.skip_fraction, "macs_ratio": res.macs_ratio, "macs_per_image": res.macs,
             "seconds_per_image": res.seconds / len(labels)}
    return res.images.cpu(), costs


@app.command("sample")
def sample_cmd(
    out: Path = typer.Option(Path("lazydit_samples.png"), help="PNG grid of the samples."),
    pipeline: Path = typer.Option(None, help=PIPELINE_HELP),
    model: Path = typer.Option(None, help=MODEL_HELP),
    gates: Path = typer.Option(None, help="Trained gates (train-gates); omit for plain DDIM."),
    steps: int = typer.Option(20, help="DDIM steps."),
    threshold: float = typer.Option(0.5, help="Skip when s < threshold; in (0, 1)."),
    guidance_scale: float = typer.Option(1.0, help="Classifier-free guidance scale (> 1 enables it; DiT-XL/2 uses 4)."),
    classes: str = typer.Option("0,1,2,3,4,5,6,7,8,9", help="Comma-separated class labels."),
    n_per_class: int = typer.Option(4, help=f"Samples per class (a grid row each; at most {MAX_GRID})."),
    scheduler: str = typer.Option("ddim", help="Sampler (only ddim is supported)."),
    seed: int = seed_option("Seed of the starting noise."),
) -> None:
    """Sample class-conditional images, with LazyDiT skipping when --gates is given."""
    import torch

    from tenfold.core.io import ensure_writable_dir
    from tenfold.core.plots import plt, save_figure

    _check_count("n-per-class", n_per_class, most=MAX_GRID)
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    pipe = _pipeline(pipeline, model, scheduler)
    _check_steps(steps, pipe)
    wanted = _classes(classes, pipe)
    if len(wanted) > MAX_GRID:
        raise InputError(f"--classes lists {len(wanted)} classes; a sample grid holds at most {MAX_GRID} rows")
    labels = torch.tensor(wanted).repeat_interleave(n_per_class)
    images, costs = _run_sampler(pipe, gates, steps, threshold, guidance_scale, labels, seed)
    rows = images.reshape(len(wanted), n_per_class, *images.shape[1:])  # (classes, n, C, H, W)
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # (C, classes H, n W)
    fig, ax = plt.subplots(1, 1, figsize=(max(2, n_per_class * 0.5), max(0.9, len(wanted) * 0.5)))
    if grid.shape[0] == 1:
        ax.imshow(grid[0].numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(grid[:3].permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.axis("off")
    save_figure(fig, out)
    typer.echo(json.dumps({"samples": str(out), **costs}, indent=2))


@app.command("evaluate")
def evaluate_cmd(
    model: Path = typer.Option(None, help=MODEL_HELP),
    gates: Path = typer.Option(None, help="Trained gates; omit to evaluate plain DDIM."),
    steps: int = typer.Option(20, help="DDIM steps."),
    threshold: float = typer.Option(0.5, help="Skip when s < threshold; in (0, 1)."),
    guidance_scale: float = typer.Option(1.0, help="Classifier-free guidance scale (> 1 enables it)."),
    n_per_class: int = typer.Option(100, help=f"Samples per digit class (at most {MAX_EVAL:,})."),
    classifier: Path = typer.Option(None, help="digit-classifier folder (default: the zoo's)."),
    scheduler: str = typer.Option("ddim", help="Sampler (only ddim is supported)."),
    seed: int = seed_option("Seed of the starting noise."),
) -> None:
    """FID and precision/recall (digit-classifier features, against the digits' held-out split), class
    accuracy, skip fraction, MACs ratio and time per image of a digits DiT."""
    import torch

    from tenfold.data.images import load_digits
    from tenfold.lazydit.evaluate import Judge
    from tenfold.zoo.digit_classifier import load_digit_classifier

    _check_count("n-per-class", n_per_class, most=MAX_EVAL)
    judge_model = load_digit_classifier(classifier)
    pipe = _pipeline(None, model, scheduler)
    _check_steps(steps, pipe)
    if pipe.transformer.config.num_embeds_ada_norm != 10 or pipe.transformer.config.in_channels != 1:
        raise InputError("evaluate judges digits with the digit classifier: the DiT must be a one-channel model of the "
                         "10 digit classes")
    labels = torch.arange(10).repeat_interleave(n_per_class)
    images, costs = _run_sampler(pipe, gates, steps, threshold, guidance_scale, labels, seed)
    _, held_out = load_digits(size=8).split(0.2, seed=0)
    if images.shape[-1] != 8:
        images = torch.nn.functional.adaptive_avg_pool2d(images, 8)
    row = Judge.from_images(judge_model, held_out.images).score(images, labels)
    row.pop("_units")
    typer.echo(json.dumps({**row, **costs}, indent=2))
