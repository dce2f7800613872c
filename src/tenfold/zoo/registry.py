"""The zoo registry: build once, deterministically, into a save_pretrained folder; reuse after."""

from __future__ import annotations

import fcntl
import importlib
import os
import pkgutil
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tenfold.core.errors import CacheError, UnknownNameError
from tenfold.core.io import atomic_write_json, read_json, tenfold_home
from tenfold.core.progress import say

Builder = Callable[..., dict]  # builder(folder: Path, seed: int, **options) -> report


@dataclass(frozen=True)
class ZooSpec:
    name: str
    size: str
    data: str
    description: str
    builder: Builder

    def path(self) -> Path:
        return tenfold_home() / "zoo" / self.name

    def is_built(self) -> bool:
        return (self.path() / "zoo.json").is_file()

    def info(self) -> dict:
        """The build report saved beside the model (parameters, data, validation numbers, seconds)."""
        if not self.is_built():
            raise CacheError(f"zoo model {self.name!r} is not built: run `tenfold zoo build {self.name}`")
        return read_json(self.path() / "zoo.json")

    def build(self, force: bool = False, seed: int = 0, **options) -> dict:
        """Train into a temporary folder and move it into place, so a crash never leaves half a model.

        A lock file serialises concurrent builds of the same entry: a second process waits, then
        finds the model built and reuses it.
        """
        if self.is_built() and not force:
            return {**self.info(), "cached": True}
        with _build_lock(self.path()):
            if self.is_built() and not force:
                return {**self.info(), "cached": True}
            return self._build(seed, **options)

    def _build(self, seed: int, **options) -> dict:
        """Build under the lock; half-built folders of killed builds (any other `.NAME.building-*`:
        their owner held this lock, so it is dead) are removed first."""
        from tenfold.core.runtime import work_starts

        work_starts(f"building zoo model {self.name}")
        final = self.path()
        for stale in final.parent.glob(f".{final.name}.building-*"):
            shutil.rmtree(stale, ignore_errors=True)
        work = final.with_name(f".{final.name}.building-{os.getpid()}")
        work.mkdir(parents=True)
        say(f"[zoo] building {self.name} (one-time cost; cached at {final})")
        start = time.perf_counter()
        report = self.builder(work, seed=seed, **options)
        report = {"name": self.name, "seed": seed, **report, "build_seconds": round(time.perf_counter() - start, 1)}
        atomic_write_json(work / "zoo.json", report)
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
        return {**report, "cached": False, "path": str(final)}

    def ensure(self, seed: int = 0) -> Path:
        """The model's folder, built on first use."""
        if not self.is_built():
            self.build(seed=seed)
        return self.path()


@contextmanager
def _build_lock(final: Path):
    """An exclusive flock: the kernel releases it when its holder dies, so a killed build never blocks."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.with_name(f".{final.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_MODELS: dict[str, ZooSpec] = {}


def register_model(spec: ZooSpec) -> ZooSpec:
    _MODELS[spec.name] = spec
    return spec


def _discover() -> None:
    import tenfold.zoo as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "registry":
            importlib.import_module(f"tenfold.zoo.{info.name}")


def all_models() -> list[ZooSpec]:
    _discover()
    return sorted(_MODELS.values(), key=lambda m: m.name)


def get_model(name: str) -> ZooSpec:
    _discover()
    if name not in _MODELS:
        raise UnknownNameError(f"unknown zoo model {name!r}: choose one of {', '.join(sorted(_MODELS))} (tenfold zoo list)")
    return _MODELS[name]


def zoo_path(name: str, build: bool = True) -> Path:
    """Folder of zoo model `name` (built on first use unless build=False)."""
    spec = get_model(name)
    return spec.ensure() if build else spec.path()
