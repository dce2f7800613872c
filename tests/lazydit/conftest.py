"""Small LazyDiT fixtures: a 2-block DiT trained for a few steps and a 1-epoch digit classifier (seconds)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_dit_dir() -> Path:
    from tenfold.core.runtime import torch_threads
    from tenfold.zoo.tiny_dit import build_tiny_dit

    folder = Path(tempfile.mkdtemp(prefix="tiny-dit-"))
    with torch_threads(1):
        build_tiny_dit(folder, seed=0, small=True)
    return folder


@pytest.fixture()
def small_dit(small_dit_dir):
    """(model, DDIMScheduler): a fresh copy per test, so tests may freeze or hook it."""
    from tenfold.core.runtime import torch_threads
    from tenfold.zoo.tiny_dit import load_tiny_dit

    with torch_threads(1):  # tiny shapes: one thread is fastest and least disturbed by a busy machine
        yield load_tiny_dit(small_dit_dir)


@pytest.fixture(scope="session")
def small_classifier_dir() -> Path:
    from tenfold.core.runtime import torch_threads
    from tenfold.zoo.digit_classifier import build_digit_classifier

    folder = Path(tempfile.mkdtemp(prefix="digit-clf-"))
    with torch_threads(1):
        build_digit_classifier(folder, seed=0, epochs=1)
    return folder


def make_small_dit_pipeline():
    """A random-init diffusers DiTPipeline in miniature: a 2-block DiT with learned variance (4 latent
    channels in, 8 out) over 1,000 classes (+ the null class), a 2-level VAE (16x16 RGB <-> 8x8x4), DDIM."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                        num_layers=2, sample_size=8, patch_size=2, num_embeds_ada_norm=1000,
                                        norm_num_groups=1)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                        layers_per_block=1, norm_num_groups=4, sample_size=16)
    pipe = DiTPipeline(transformer=transformer.eval(), vae=vae.eval(), scheduler=DDIMScheduler(num_train_timesteps=1000))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture()
def small_pipeline():
    from tenfold.core.runtime import torch_threads

    with torch_threads(1):
        yield make_small_dit_pipeline()


@pytest.fixture(scope="session")
def small_pipeline_dir() -> Path:
    """The miniature DiTPipeline saved with save_pretrained, and a safetensors file of 16x16 RGB training images."""
    import torch

    from tenfold.core.io import save_tensors

    folder = Path(tempfile.mkdtemp(prefix="dit-pipeline-"))
    make_small_dit_pipeline().save_pretrained(folder)
    g = torch.Generator().manual_seed(0)
    save_tensors(folder.parent / f"{folder.name}-images.safetensors",
                 {"images": torch.rand(24, 3, 16, 16, generator=g), "labels": torch.randint(1000, (24,), generator=g)})
    return folder
