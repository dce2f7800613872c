"""`tiny-dit`: a small class-conditional Diffusion Transformer (diffusers' `DiTTransformer2DModel`,
adaLN-Zero blocks as in Peebles & Xie) trained here on scikit-learn's 8x8 digits.

Pixels are scaled from [0, 1] to [-1, 1]; the model predicts the noise (epsilon) of a
`DDPMScheduler` (1000 steps, squared-cosine betas); samples are drawn with `DDIMScheduler` built from
the same config. The training split is the digit classifier's (`ImageSet.split(0.2, seed=0)`), so the
`digit-classifier` judge never saw the validation images either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tenfold.core.io import Checkpoint, atomic_write_json, read_json
from tenfold.core.progress import progress
from tenfold.zoo.registry import ZooSpec, register_model


@dataclass(frozen=True)
class TinyDiTConfig:
    image_size: int = 8
    patch_size: int = 2  # 8x8 digits -> 16 tokens of 2x2 pixels
    num_attention_heads: int = 4
    attention_head_dim: int = 16  # inner dim 64
    num_layers: int = 4
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    steps: int = 2500
    batch_size: int = 128
    lr: float = 2e-3
    warmup: int = 100
    class_dropout: float = 0.1  # diffusers' label dropout (trains the null class for guidance)


SMALL = TinyDiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=2, steps=40, batch_size=32)


def make_dit(cfg: TinyDiTConfig, n_classes: int = 10):
    """An untrained `DiTTransformer2DModel` for single-channel `cfg.image_size` images."""
    from diffusers import DiTTransformer2DModel

    return DiTTransformer2DModel(
        num_attention_heads=cfg.num_attention_heads, attention_head_dim=cfg.attention_head_dim,
        in_channels=1, out_channels=1, num_layers=cfg.num_layers, sample_size=cfg.image_size,
        patch_size=cfg.patch_size, num_embeds_ada_norm=n_classes, norm_num_groups=1,
    )


def to_model_space(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> [-1, 1], the range the DiT is trained on."""
    return images * 2 - 1


def to_pixel_space(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] model space -> [0, 1] pixels (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def build_tiny_dit(folder: Path, seed: int = 0, config: TinyDiTConfig | None = None, small: bool = False) -> dict:
    """Train the DiT on digits with the DDPM noise-prediction loss; save with save_pretrained."""
    from diffusers import DDPMScheduler

    from tenfold.data.images import load_digits

    cfg = config or (SMALL if small else TinyDiTConfig())
    train, _ = load_digits(size=cfg.image_size).split(0.2, seed=0)
    data = to_model_space(train.images)
    torch.manual_seed(seed)
    model = make_dit(cfg, train.n_classes)
    scheduler = DDPMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule,
                              prediction_type="epsilon", clip_sample=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    lr_at = lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (1 + torch.cos(torch.tensor(s / cfg.steps * torch.pi)).item())  # noqa: E731
    g = torch.Generator().manual_seed(seed)
    ckpt = Checkpoint(folder / "train-state")
    state = ckpt.load({"step": 0})
    start = int(state["step"])
    if start:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["rng"])
    model.train()
    losses: list[float] = []
    for step in progress(range(start, cfg.steps), desc="tiny-dit", total=cfg.steps - start):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_at(step)
        idx = torch.randint(len(data), (cfg.batch_size,), generator=g)
        x0, y = data[idx], train.labels[idx]
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(cfg.train_timesteps, (cfg.batch_size,), generator=g)
        drop = torch.rand(cfg.batch_size, generator=g) < cfg.class_dropout
        y = torch.where(drop, torch.full_like(y, train.n_classes), y)  # null class for guidance
        model.eval()  # our own label dropout above, seeded; diffusers' would use the global RNG
        pred = model(scheduler.add_noise(x0, noise, t), timestep=t, class_labels=y).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 500 == 0 and step + 1 < cfg.steps:
            ckpt.save({"step": step + 1, "model": model.state_dict(), "opt": opt.state_dict(), "rng": g.get_state()})
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    scheduler.save_pretrained(folder / "scheduler")
    atomic_write_json(folder / "tiny_dit.json", asdict(cfg))
    ckpt.clear()
    tail = losses[-100:] or [float("nan")]
    return {"architecture": "DiTTransformer2DModel (adaLN-Zero)", "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": round(sum(tail) / len(tail), 4), "steps": cfg.steps, "image_size": cfg.image_size,
            "data": "digits (sklearn), train split of split(0.2, seed=0), pixels scaled to [-1, 1]"}


def load_tiny_dit(path: str | Path | None = None):
    """(model in eval mode, DDIMScheduler) of a tiny-dit folder (built on first use when no path)."""
    from diffusers import DDIMScheduler, DiTTransformer2DModel

    from tenfold.core.errors import InputError
    from tenfold.zoo.registry import zoo_path

    folder = Path(path) if path is not None else zoo_path("tiny-dit")
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder} holds no DiT (config.json missing): pass a save_pretrained folder of a "
                         "DiTTransformer2DModel, or omit the path to use the zoo's tiny-dit")
    model = DiTTransformer2DModel.from_pretrained(folder).eval()
    sched_dir = folder / "scheduler"
    if sched_dir.is_dir():
        scheduler = DDIMScheduler.from_config(read_json(sched_dir / "scheduler_config.json"))
    else:
        scheduler = DDIMScheduler(num_train_timesteps=1000)
    return model, scheduler


register_model(ZooSpec(
    name="tiny-dit", size="~0.4M params (DiT, 4 layers, d=64, 16 tokens of 2x2 pixels)",
    data="digits (scikit-learn)",
    description="class-conditional Diffusion Transformer (diffusers DiTTransformer2DModel) for LazyDiT.",
    builder=build_tiny_dit,
))
