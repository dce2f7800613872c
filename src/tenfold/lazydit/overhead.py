"""What LazyDiT's gating costs at real size: a DiT-XL/2-shaped, randomly initialised diffusers DiT
(28 blocks, width 1152, 16 heads, patch 2 on 32 x 32 x 4 latents, learned variance, 1,000 classes),
sampled with classifier-free guidance. Random weights make the images meaningless but the work real.

Zero gates on the authors' every-other-step pattern give s = 0.5 exactly, so the threshold alone picks
the regime: at 0.5 every gate is evaluated and every module computes (pure gating overhead); at 0.99
every gated module is skipped (the pattern's ~50% cap), with the gates still evaluated.
"""

from __future__ import annotations

import torch

DIT_XL_2 = {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8,
            "num_layers": 28, "sample_size": 32, "patch_size": 2, "num_embeds_ada_norm": 1000}


def dit_xl2_shaped(device: torch.device, dtype: torch.dtype, seed: int = 0):
    """A random-init DiTTransformer2DModel with DiT-XL/2's shape, on `device` in `dtype`."""
    from diffusers import DiTTransformer2DModel

    torch.manual_seed(seed)
    return DiTTransformer2DModel(**DIT_XL_2).to(device=device, dtype=dtype).eval()


def gating_overhead(steps: int = 20, images: int = 8, guidance_scale: float = 4.0, repeats: int = 3,
                    seed: int = 0) -> dict:
    """Seconds per image (median of `repeats`, after one warm-up) of full DDIM, LazyDiT gates that compute
    everything, and gates that skip every gated step, with their MACs ratios."""
    from diffusers import DDIMScheduler

    from tenfold.core.runtime import pick_device
    from tenfold.lazydit.dit import LazyDiTPipeline
    from tenfold.lazydit.gates import LazyGates

    device = pick_device()
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    pipe = LazyDiTPipeline(dit_xl2_shaped(device, dtype, seed), DDIMScheduler(num_train_timesteps=1000))
    gates = LazyGates.for_model(pipe.transformer, steps, "alternate").to(device)
    labels = torch.arange(images) * 97 % 1000
    settings = {"full DDIM": {}, "gates, nothing skipped": {"gates": gates, "threshold": 0.5},
                "gates, every gated step skipped": {"gates": gates, "threshold": 0.99}}
    out = {"model": "DiT-XL/2-shaped DiTTransformer2DModel, random init", "dtype": str(dtype), "device": str(device),
           "steps": steps, "images": images, "guidance_scale": guidance_scale}
    for name, kw in settings.items():
        times = []
        for r in range(repeats + 1):
            res = pipe(labels, steps, guidance_scale=guidance_scale, output_type="pt",
                       generator=torch.Generator().manual_seed(seed), **kw)
            if r:
                times.append(res.seconds / images)
        out[name] = {"seconds_per_image": sorted(times)[len(times) // 2], "macs_ratio": res.macs_ratio,
                     "skip_fraction": res.skip_fraction}
    base = out["full DDIM"]["seconds_per_image"]
    out["gating_overhead"] = out["gates, nothing skipped"]["seconds_per_image"] / base - 1
    out["speedup_at_the_cap"] = base / out["gates, every gated step skipped"]["seconds_per_image"]
    return out
