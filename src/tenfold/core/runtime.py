"""Seeding, device choice, thread count, timers and the environment record."""

from __future__ import annotations

import os
import platform
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from tenfold.core.errors import InputError

DEVICES = ("auto", "cpu", "cuda", "mps")
_settings = {"device": "auto", "threads": None, "mixed_precision": "no", "dry_run": False}


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same way."""
    if not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def configure(device: str | None = None, threads: int | None = None, mixed_precision: str | None = None,
              dry_run: bool | None = None) -> None:
    """Set the process-wide device preference, torch thread count and training precision (the CLI's
    --device/--threads/--mixed-precision)."""
    if device is not None:
        if device not in DEVICES and not device.startswith("cuda:"):
            raise InputError(f"--device must be one of {', '.join(DEVICES)} or cuda:N, got {device!r}")
        _settings["device"] = device
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
        _settings["threads"] = threads
    if mixed_precision is not None:
        if mixed_precision not in ("no", "bf16", "fp16"):
            raise InputError(f"--mixed-precision must be one of no, bf16, fp16, got {mixed_precision!r}")
        _settings["mixed_precision"] = mixed_precision
    if dry_run is not None:
        _settings["dry_run"] = dry_run


def requested_threads() -> int | None:
    """The CLI's --threads, or None when the user left torch's default."""
    return _settings["threads"]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a Slurm or taskset allocation)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def work_starts(what: str) -> None:
    """Mark where long work begins (a loop with a progress bar, a method run, a zoo build, training).

    Under --dry-run this stops the command with exit 0: every argument and input checked before
    this point was accepted, and nothing long has run.
    """
    if _settings["dry_run"]:
        from tenfold.core.errors import DryRunStop

        raise DryRunStop(f"arguments and inputs accepted; stopped before {what} (--dry-run)")


def mixed_precision_setting() -> str:
    """The training precision asked for (--mixed-precision or TENFOLD_MIXED_PRECISION), default 'no'."""
    return os.environ.get("TENFOLD_MIXED_PRECISION") or _settings["mixed_precision"]


def is_main_process() -> bool:
    """False in every process but rank 0 of a distributed launch (accelerate/torchrun set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def pick_device(preference: str | None = None) -> torch.device:
    """The device to run on: the explicit preference, else cuda, else mps, else cpu."""
    choice = preference or os.environ.get("TENFOLD_DEVICE") or _settings["device"]
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {choice!r} asked for, but CUDA is not available here: use --device cpu")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device 'mps' asked for, but MPS is not available here: use --device cpu")
    return torch.device(choice)


def environment() -> dict:
    """What a result.json records about where it was measured."""
    import tenfold

    device = pick_device()
    env = {
        "tenfold": tenfold.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(terse=True),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


@dataclass
class Timer:
    """Wall-clock timer; `with Timer() as t: ...; t.seconds`. Synchronises CUDA when asked."""

    sync_cuda: bool = False
    seconds: float = field(default=0.0, init=False)

    def __enter__(self) -> Timer:
        if self.sync_cuda and torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.sync_cuda and torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self._start


@contextmanager
def torch_threads(n: int):
    """Temporarily run torch with `n` threads (benchmarks that compare like with like)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
