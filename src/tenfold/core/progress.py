"""One progress-bar helper: tqdm on a terminal, silent without a TTY or under --quiet."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def is_quiet() -> bool:
    return _state["quiet"] or os.environ.get("TENFOLD_QUIET") == "1"


def progress(iterable: Iterable[T] | None = None, desc: str = "", total: int | None = None, **kwargs) -> tqdm:
    """Wrap `iterable` in a progress bar (or make a manual one when `iterable` is None).

    A progress bar marks long work: under --dry-run the command stops here.
    """
    from tenfold.core.runtime import work_starts

    work_starts(desc or "a long loop")
    disable = is_quiet() or not sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=False, dynamic_ncols=True, **kwargs)


def say(message: str) -> None:
    """A one-line status message on stderr, silenced by --quiet."""
    if not is_quiet():
        print(message, file=sys.stderr, flush=True)
