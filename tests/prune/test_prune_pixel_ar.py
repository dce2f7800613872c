"""The image AR zoo model: encoding, bits/dim, and sampling from a pruned copy."""

from __future__ import annotations

import math

import torch

from tenfold.prune.pruner import prune
from tenfold.zoo.pixel_ar import (
    CLASSES,
    LEVELS,
    PIXELS,
    bits_per_dim,
    encode,
    load_pixel_ar,
    sample,
)


def test_encoding_puts_the_class_token_first_then_the_pixels():
    levels = torch.arange(64).remainder(LEVELS).view(1, 1, 8, 8)
    ids = encode(levels, torch.tensor([3]))
    assert ids.shape == (1, 65) and ids[0, 0] == LEVELS + 3 and torch.equal(ids[0, 1:], levels.flatten())


def test_pruned_pixel_model_scores_and_samples(small_pixel_dir):
    model = load_pixel_ar(small_pixel_dir)
    from tenfold.zoo.pixel_ar import split_ids

    train, valid = split_ids(0)
    dense = bits_per_dim(model, valid[:50])
    assert 0 < dense < math.log2(LEVELS) + 1
    prune(model, train[:16], 0.3, method="numerical")
    assert math.isfinite(bits_per_dim(model, valid[:50]))
    out = sample(model, torch.arange(CLASSES), torch.Generator().manual_seed(0))
    assert out.shape == (CLASSES, 1, 8, 8) and out.min() >= 0 and out.max() < LEVELS
    assert PIXELS == 64


def test_cli_eval_of_an_image_model_names_the_images_it_scored(small_pixel_dir, tmp_path):
    """`prune eval` on the image model says how many held-out images it scored (the split's own count)."""
    import json
    import shutil

    from typer.testing import CliRunner

    from tenfold.prune.cli import app
    from tenfold.zoo.pixel_ar import split_ids

    folder = tmp_path / "pixel"
    shutil.copytree(small_pixel_dir, folder)
    (folder / "zoo.json").write_text(json.dumps({"name": "pixel-ar", "corpus": "digits"}))
    res = CliRunner().invoke(app, ["eval", "--model", str(folder), "--new-tokens", "2", "--out", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["text"] == f"digits validation split (all {len(split_ids(0)[1])} images)"
