"""A small test LM that was really trained on MIND-length prompts, for the end-to-end plumbing tests.

The shared small tiny-lm is trained on 64-token windows, and the official prompt's instruction alone
takes about 110 of its tokens, so no MIND prompt fits it (`prompt_limit` refuses it, as it should).
This one has the same size and recipe plus a second stage on 512-token windows, so its recorded
`training_context` (512) is true and the smoke profile's prompts (2 queries, titles cut to 6 words)
fit it. These tests check what the pipeline runs and records, not what the LM learns."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from tenfold.core.io import atomic_write_json

CONTEXT = 512


@pytest.fixture(scope="session")
def long_lm_dir() -> Path:
    from tenfold.zoo.tiny_lm import SMALL, build_tiny_lm

    folder = Path(tempfile.mkdtemp(prefix=f"tiny-lm-{CONTEXT}-", dir=os.environ["TENFOLD_HOME"]))
    report = build_tiny_lm(folder, seed=0, text="python-topics", config=replace(SMALL, later_stages=((CONTEXT, 2, 8),)))
    assert report["training_context"] == CONTEXT
    atomic_write_json(folder / "zoo.json", {"name": f"tiny-lm-small-{CONTEXT}", "seed": 0, **report})
    return folder
