"""The dataset registry behind `tenfold data list|show`."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

from tenfold.core.errors import UnknownNameError

SOURCES = ("installed package", "generated", "user path", "installed package or user path", "debian package")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: str  # one of SOURCES
    size: str  # human-readable, e.g. "1,797 images 8x8"
    licence: str
    loader: str  # "tenfold.data.images:load_digits"
    description: str = ""
    available: Callable[[], bool] = field(default=lambda: True, compare=False)

    def describe(self) -> dict:
        return {
            "name": self.name, "source": self.source, "size": self.size, "licence": self.licence,
            "loader": self.loader, "available": "yes" if self.available() else "no (see description)",
            "description": self.description,
        }


_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    _DATASETS[spec.name] = spec
    return spec


def _discover() -> None:
    import tenfold.data as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "registry":
            importlib.import_module(f"tenfold.data.{info.name}")


def all_datasets() -> list[DatasetSpec]:
    _discover()
    return sorted(_DATASETS.values(), key=lambda d: d.name)


def get_dataset(name: str) -> DatasetSpec:
    _discover()
    if name not in _DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}: choose one of {', '.join(sorted(_DATASETS))} (tenfold data list)")
    return _DATASETS[name]
