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
