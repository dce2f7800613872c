"""`tenfold lazydit ...`: train lazy gates, sample and evaluate a DiT with LazyDiT skipping."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands
from tenfold.core.errors import InputError, UnsupportedError

app = typer.Typer(help="LazyDiT (AAAI 2025): learned gates skip DiT attention/MLP work by reusing the previous step.",
                  no_args_is_help=True)
add_standard_commands(app, "lazydit")

MODEL_HELP = "DiTTransformer2DModel save_pretrained folder (default: the zoo's tiny-dit)."


def _model(model: Path | None, scheduler: str):
    from tenfold.zoo.tiny_dit import load_tiny_dit

    if scheduler.lower() != "ddim":
        raise UnsupportedError(f"scheduler {scheduler!r} is not supported: LazyDiT's gates are trained per DDIM step; "
                               "use --scheduler ddim (any DDPM-trained DiT can be sampled with DDIM)")
    return load_tiny_dit(model)


def _gates(path: Path | None, steps: int, model):
    if path is None:
        return None
    from tenfold.lazydit.dit import dit_blocks
    from tenfold.lazydit.gates import LazyGates

    gates = LazyGates.load(path)
    if gates.num_layers != len(dit_blocks(model)) or gates.dim != model.transformer_blocks[0].attn1.to_q.in_features:
        raise InputError(f"gates {path} are for {gates.num_layers} blocks of width {gates.dim}, which does not match "
                         "this DiT: train gates for this model with `tenfold lazydit train-gates`")
    if gates.num_steps != steps:
        raise InputError(f"gates {path} were trained for {gates.num_steps} DDIM steps: pass --steps {gates.num_steps}")
    return gates


def _classes(text: str) -> list[int]:
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError as err:
        raise InputError(f"--classes must be comma-separated integers, got {text!r}") from err


def _images(path: Path | None, size: int):
    """(images in [0, 1], labels): a safetensors file with 'images' (n, C, H, W) and 'labels', or the digits."""
    if path is None:
        from tenfold.data.images import load_digits

        if size not in (8, 16):
            raise InputError(f"the digits come at 8x8 or 16x16, but the DiT samples {size}x{size}: pass --images")
        train, _ = load_digits(size=size).split(0.2, seed=0)
        return train.images, train.labels
    from tenfold.core.io import load_tensors

    t = load_tensors(path)
    if not {"images", "labels"} <= set(t):
        raise InputError(f"{path} must hold tensors 'images' (n, C, H, W) in [0, 1] and 'labels' (n,)")
    return t["images"].float(), t["labels"].long()


def _run_sampler(model, gates, steps: int, threshold: float, scheduler: str, labels, seed: int):
    """Sample `labels` with optional LazyDiT gates; return the result and its cost figures."""
    import torch

    from tenfold.lazydit.dit import LazyDiTPipeline, profile_macs
    from tenfold.lazydit.gates import check_threshold

    check_threshold(threshold)
    dit, sched = _model(model, scheduler)
    policy = _gates(gates, steps, dit)
    res = LazyDiTPipeline(dit, sched)(labels, steps, policy=policy, threshold=threshold,
                                      generator=torch.Generator().manual_seed(seed))
    macs = profile_macs(dit)
    costs = {"skip_fraction": res.stats.skip_fraction,
             "macs_ratio": macs.used(res.stats, len(labels), steps) / (macs.full * steps),
             "seconds_per_image": res.seconds / len(labels)}
    return res, costs


@app.command("train-gates")
def train_gates_cmd(
    out: Path = typer.Option(Path("lazydit_gates.safetensors"), help="Where to write the trained gates."),
    model: Path = typer.Option(None, help=MODEL_HELP),
    images: Path = typer.Option(None, help="safetensors with 'images' (n,C,H,W) in [0,1] and 'labels'; default digits."),
    steps: int = typer.Option(20, help="DDIM steps the gates are trained for."),
    iters: int = typer.Option(300, help="Training iterations."),
    batch: int = typer.Option(64, help="Batch size."),
    lr: float = typer.Option(1e-3, help="AdamW learning rate."),
    rho: float = typer.Option(1e-3, help="Laziness penalty ratio (MHSA and feedforward): larger skips more."),
    rollout: int = typer.Option(0, help="Lazy steps per training sample, the cache being the lazy model's own output; "
                                "0 = the whole trajectory (steps - 1), 1 = the paper's one-step objective."),
    objective: str = typer.Option("sample", help="'sample': MSE of the rollout's end point against the full model's; "
                                  "'eps': the paper's per-step output MSE."),
    threshold: float = typer.Option(0.5, help="Skip threshold on s, in (0, 1)."),
    scheduler: str = typer.Option("ddim", help="Sampler (only ddim is supported)."),
    checkpoint_dir: Path = typer.Option(None, help="Save progress here and resume from it."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Train the lazy learning layers (DiT frozen) and save them as safetensors."""
    from tenfold.lazydit.dit import dit_blocks
    from tenfold.lazydit.gates import LazyConfig, LazyGates
    from tenfold.lazydit.train import train_gates

    config = LazyConfig(threshold=threshold, rho_attn=rho, rho_mlp=rho, lr=lr, train_iters=iters, batch_size=batch,
                        rollout=rollout or max(steps - 1, 1), objective=objective)
    dit, sched = _model(model, scheduler)
    x, y = _images(images, dit.config.sample_size)
    gates = LazyGates(steps, len(dit_blocks(dit)), dit.transformer_blocks[0].attn1.to_q.in_features)
    history = train_gates(dit, sched, gates, x * 2 - 1, y, config, seed=seed, checkpoint_dir=checkpoint_dir)
    gates.save(out)
    typer.echo(json.dumps({"gates": str(out), **history.summary()}, indent=2))


@app.command("sample")
def sample_cmd(
    out: Path = typer.Option(Path("lazydit_samples.png"), help="PNG grid of the samples."),
    model: Path = typer.Option(None, help=MODEL_HELP),
    gates: Path = typer.Option(None, help="Trained gates (train-gates); omit for plain DDIM."),
    steps: int = typer.Option(20, help="DDIM steps."),
    threshold: float = typer.Option(0.5, help="Skip when s < threshold; in (0, 1)."),
    classes: str = typer.Option("0,1,2,3,4,5,6,7,8,9", help="Comma-separated class labels."),
    n_per_class: int = typer.Option(4, help="Samples per class."),
    scheduler: str = typer.Option("ddim", help="Sampler (only ddim is supported)."),
    seed: int = typer.Option(0, help="Seed of the starting noise."),
) -> None:
    """Sample class-conditional images, with LazyDiT skipping when --gates is given."""
    import torch

    from tenfold.core.plots import plt, save_figure

    labels = torch.tensor(_classes(classes)).repeat_interleave(n_per_class)
    res, costs = _run_sampler(model, gates, steps, threshold, scheduler, labels, seed)
    fig, axes = plt.subplots(1, 1, figsize=(max(2, len(labels) * 0.4), 0.8))
    axes.imshow(torch.cat(list(res.images[:, 0]), dim=1).numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    axes.axis("off")
    save_figure(fig, out)
    typer.echo(json.dumps({"samples": str(out), **costs}, indent=2))


@app.command("evaluate")
def evaluate_cmd(
    model: Path = typer.Option(None, help=MODEL_HELP),
    gates: Path = typer.Option(None, help="Trained gates; omit to evaluate plain DDIM."),
    steps: int = typer.Option(20, help="DDIM steps."),
    threshold: float = typer.Option(0.5, help="Skip when s < threshold; in (0, 1)."),
    n_per_class: int = typer.Option(100, help="Samples per digit class."),
    classifier: Path = typer.Option(None, help="digit-classifier folder (default: the zoo's)."),
    scheduler: str = typer.Option("ddim", help="Sampler (only ddim is supported)."),
    seed: int = typer.Option(0, help="Seed of the starting noise."),
) -> None:
    """FID (digit-classifier features), class accuracy, skip fraction, MACs ratio and time per image."""
    import torch

    from tenfold.data.images import load_digits
    from tenfold.lazydit.evaluate import Judge
    from tenfold.zoo.digit_classifier import load_digit_classifier

    labels = torch.arange(10).repeat_interleave(n_per_class)
    res, costs = _run_sampler(model, gates, steps, threshold, scheduler, labels, seed)
    train, _ = load_digits(size=8).split(0.2, seed=0)
    judge = Judge.from_images(load_digit_classifier(classifier), train.images)
    row = judge.score(torch.nn.functional.adaptive_avg_pool2d(res.images, 8) if res.images.shape[-1] != 8 else res.images,
                      labels)
    typer.echo(json.dumps({**row, **costs}, indent=2))
