"""The method registry: a method declares its name, paper and entry points once; the CLI and
`tenfold reproduce` find it here, so neither needs an edit when a method lands."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenfold.core.results import Result

Runner = Callable[..., "Result"]  # (profile: str, seed: int, out: Path, seeds: int | None = None) -> Result


@dataclass(frozen=True)
class MethodSpec:
    name: str
    title: str
    arxiv: str
    reproduce: Runner
    bench: Runner | None = None
    summary: str = ""

    def run(self, kind: str, profile: str, seed: int, out: Path, seeds: int | None = None) -> Result:
        """Call the runner; `seeds` (how many, starting at `seed`) only when asked, default per profile."""
        runner = self.reproduce if kind == "reproduce" else self.bench
        if runner is None:
            raise NotImplementedError(f"{self.name} has no {kind}")
        if seeds is None:
            return runner(profile=profile, seed=seed, out=out)
        if "seeds" not in inspect.signature(runner).parameters:
            from tenfold.core.errors import InputError

            raise InputError(f"{self.name} {kind} takes no --seeds: its profile fixes how it gets its intervals")
        return runner(profile=profile, seed=seed, out=out, seeds=seeds)


_METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    _METHODS[spec.name] = spec
    return spec


def registered() -> dict[str, MethodSpec]:
    return dict(_METHODS)
