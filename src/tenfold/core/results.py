"""The `tenfold.result/1` record: what a run measured, the claims it checked, where it ran.

A claim's `holds` is always computed from `ours`, `reference` and `better`; it is never written by
hand, and a loaded file whose stored `holds` disagrees with its numbers is rejected.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.io import atomic_write_json, read_json

SCHEMA = "tenfold.result/1"
KINDS = ("reproduce", "bench", "run")
STATUSES = ("ok", "failed", "not implemented")
Better = Literal["lower", "higher"]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Claim:
    """One checkable statement: `ours` is better than `reference` in the direction `better`."""

    id: str
    statement: str
    ours: float | None
    reference: float | None
    reference_name: str = ""
    better: Better = "lower"

    def __post_init__(self) -> None:
        if self.better not in ("lower", "higher"):
            raise InputError(f"claim {self.id!r}: better must be 'lower' or 'higher', got {self.better!r}")
        for name in ("ours", "reference"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (int, float)):
                raise InputError(f"claim {self.id!r}: {name} must be a number or None, got {value!r}")

    @property
    def holds(self) -> bool:
        """True only when both numbers are finite and ours is strictly better."""
        if not (_finite(self.ours) and _finite(self.reference)):
            return False
        return self.ours < self.reference if self.better == "lower" else self.ours > self.reference

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "statement": self.statement,
            "ours": _clean(self.ours),
            "reference": _clean(self.reference),
            "reference_name": self.reference_name,
            "better": self.better,
            "holds": self.holds,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Claim:
        return cls(
            id=d["id"],
            statement=d["statement"],
            ours=d.get("ours"),
            reference=d.get("reference"),
            reference_name=d.get("reference_name", ""),
            better=d.get("better", "lower"),
        )


def _clean(x: Any) -> Any:
    """JSON has no NaN/inf: write them as None (a claim with None never holds)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):
        return _clean(x.tolist())
    return x


@dataclass
class Result:
    """A method's run: its config, metrics, claims and artifacts (files beside result.json)."""

    method: str
    kind: str
    paper: dict
    profile: str = "quick"
    seed: int = 0
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    wall_seconds: float | None = None
    status: str = "ok"
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"result kind must be one of {KINDS}, got {self.kind!r}")
        if self.status not in STATUSES:
            raise InputError(f"result status must be one of {STATUSES}, got {self.status!r}")

    def claim(self, id: str, statement: str, ours, reference, reference_name: str = "", better: Better = "lower") -> Claim:
        """Add a claim (numbers are converted to float; `holds` is computed, never given)."""
        c = Claim(id, statement, _as_float(ours), _as_float(reference), reference_name, better)
        self.claims.append(c)
        return c

    @property
    def claims_held(self) -> int:
        return sum(c.holds for c in self.claims)

    def to_dict(self) -> dict:
        d = {
            "schema": SCHEMA,
            "method": self.method,
            "kind": self.kind,
            "status": self.status,
            "paper": self.paper,
            "profile": self.profile,
            "seed": self.seed,
            "config": _clean(self.config),
            "metrics": _clean(self.metrics),
            "claims": [c.to_dict() for c in self.claims],
            "artifacts": list(self.artifacts),
            "environment": self.environment,
            "wall_seconds": self.wall_seconds,
        }
        if self.notes:
            d["notes"] = list(self.notes)
        if self.error:
            d["error"] = self.error
        return d

    def write(self, folder: str | os.PathLike) -> Path:
        """Write `folder/result.json` atomically and return its path."""
        return atomic_write_json(Path(folder) / "result.json", self.to_dict())

    @classmethod
    def from_dict(cls, d: Any, source: str = "result") -> Result:
        validate(d, source)
        return cls(
            method=d["method"],
            kind=d["kind"],
            paper=d["paper"],
            profile=d.get("profile", "quick"),
            seed=d.get("seed", 0),
            config=d.get("config", {}),
            metrics=d.get("metrics", {}),
            claims=[Claim.from_dict(c) for c in d.get("claims", [])],
            artifacts=d.get("artifacts", []),
            environment=d.get("environment", {}),
            wall_seconds=d.get("wall_seconds"),
            status=d.get("status", "ok"),
            notes=d.get("notes", []),
            error=d.get("error"),
        )


def _as_float(x: Any) -> float | None:
    if x is None:
        return None
    if hasattr(x, "item"):
        x = x.item()
    return float(x)


def validate(d: Any, source: str = "result") -> None:
    """Raise SchemaError naming `source` unless `d` is a well-formed tenfold.result/1 record."""

    def fail(why: str) -> None:
        raise SchemaError(f"{source}: {why}; it is not a valid {SCHEMA} file (regenerate it or remove it)")

    if not isinstance(d, dict):
        fail("top level is not a JSON object")
    if d.get("schema") != SCHEMA:
        fail(f"schema is {d.get('schema')!r}, expected {SCHEMA!r}")
    for key, typ in (("method", str), ("kind", str), ("paper", dict), ("metrics", dict), ("claims", list)):
        if not isinstance(d.get(key), typ):
            fail(f"field {key!r} is missing or not a {typ.__name__}")
    if d["kind"] not in KINDS:
        fail(f"kind {d['kind']!r} is not one of {KINDS}")
    if d.get("status", "ok") not in STATUSES:
        fail(f"status {d.get('status')!r} is not one of {STATUSES}")
    for i, c in enumerate(d["claims"]):
        if not isinstance(c, dict) or not {"id", "statement", "better"} <= c.keys():
            fail(f"claim {i} lacks id/statement/better")
        try:
            claim = Claim.from_dict(c)
        except InputError as err:
            fail(str(err))
        if "holds" in c and c["holds"] != claim.holds:
            fail(f"claim {c['id']!r} says holds={c['holds']} but its numbers say {claim.holds}")


def load_result(path: str | os.PathLike) -> Result:
    """Load and validate a result.json."""
    path = Path(path)
    return Result.from_dict(read_json(path), source=str(path))
