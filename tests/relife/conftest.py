"""A small RecBole atomic-file folder written by the tests (no MovieLens needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

GENRES = ["Action", "Comedy", "Drama", "Horror"]


def write_atomic(folder: Path, n_users: int = 8, n_items: int = 60, seed: int = 0) -> Path:
    """Users with 23..45 ratings each (so lists of different lengths occur), items with one genre."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(1, n_users + 1):
        n = 23 + 3 * (u - 1)
        items = rng.choice(np.arange(1, n_items + 1), size=n, replace=False)
        for t, i in enumerate(items):
            rating = 5 if (i + u) % 3 == 0 else int(rng.integers(1, 5))
            rows.append(f"{u}\t{i}\t{rating}\t{1000 * u + t}")
    (folder / "toy.inter").write_text("\n".join(rows) + "\n")
    items = ["item_id:token\tmovie_title:token_seq\tclass:token_seq"]
    items += [f"{i}\tMovie {i}\t{GENRES[i % 4]}" for i in range(1, n_items + 1)]
    (folder / "toy.item").write_text("\n".join(items) + "\n")
    return folder


@pytest.fixture(scope="session")
def toy_atomic(tmp_path_factory) -> Path:
    return write_atomic(tmp_path_factory.mktemp("relife-atomic") / "toy")
