"""Saving matplotlib figures atomically with a headless backend (plots are artifacts of a result)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tenfold.core.io import atomic_write  # noqa: E402


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> str:
    """Write `fig` as PNG to `path` atomically, close it, and return the file name (for `artifacts`)."""
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path.name


__all__ = ["plt", "save_figure"]
