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
