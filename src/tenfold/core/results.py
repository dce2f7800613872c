"""The `tenfold.result/2` record: what a run measured, the claims it checked, where it ran.

A claim compares ours with a reference in one direction (`better`). Unless it is `exact` (a
deterministic computation: an exactness error, a count of calls, a parameter count), it carries a
95% `interval` of ours - reference, made by `tenfold.core.stats`, and an `evidence` line saying how.
Its `verdict` is computed, never written by hand:

- holds: the whole interval lies beyond `margin` on the better side (lower: hi < -margin;
  higher: lo > margin);
- fails: the whole interval lies on the other side of that line (lower: lo > -margin;
  higher: hi < margin);
- inconclusive: otherwise, and whenever a number could not be measured.

An exact claim is the point comparison of ours - reference against the same line (holds or fails).
`holds` equals `verdict == "holds"`. A stochastic claim without an interval is refused, and a loaded
file whose stored verdict or holds disagrees with its numbers is rejected. Files in schema /1 (point
comparisons, no interval) still load; their claims are marked as such.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.io import atomic_write_json, read_json

SCHEMA = "tenfold.result/2"
SCHEMA_V1 = "tenfold.result/1"
SCHEMAS = (SCHEMA, SCHEMA_V1)
KINDS = ("reproduce", "bench", "run")
STATUSES = ("ok", "failed", "not implemented")
VERDICTS = ("holds", "inconclusive", "fails")
Better = Literal["lower", "higher"]
LEGACY_EVIDENCE = "schema /1 file: one point comparison, no interval"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Claim:
    """One checkable statement: ours - reference lies beyond `margin` on the `better` side."""

    id: str
    statement: str
    ours: float | None
    reference: float | None
    reference_name: str = ""
    better: Better = "lower"
    exact: bool = False
    interval: tuple[float, float] | None = None
    margin: float = 0.0
    evidence: str = ""
    legacy: bool = False  # loaded from a schema /1 file: a point comparison without interval

    def __post_init__(self) -> None:
        def bad(why: str) -> None:
            raise InputError(f"claim {self.id!r}: {why}")

        if self.better not in ("lower", "higher"):
            bad(f"better must be 'lower' or 'higher', got {self.better!r}")
        for name in ("ours", "reference"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                bad(f"{name} must be a number or None, got {value!r}")
        if not _finite(self.margin) or self.margin < 0:
            bad(f"margin must be a finite number >= 0, got {self.margin!r}")
        if self.interval is not None:
            if self.exact:
                bad("an exact claim has no interval (drop interval, or set exact=False)")
            if len(self.interval) != 2 or not all(_finite(v) for v in self.interval):
                bad(f"interval must be two finite numbers [lo, hi], got {self.interval!r}")
            if self.interval[0] > self.interval[1]:
                bad(f"interval lower bound {self.interval[0]} is above its upper bound {self.interval[1]}")
        elif not (self.exact or self.legacy) and self.measured:
            bad("is stochastic (exact=False) but has no interval: give one from tenfold.core.stats "
                "(paired_bootstrap, seed_interval, ...), or exact=True if it is a deterministic computation")
        if not (self.exact or self.legacy) and self.measured and not self.evidence.strip():
            bad("has an interval but no evidence line saying how it was made")

    @property
    def measured(self) -> bool:
        return _finite(self.ours) and _finite(self.reference)

    @property
    def difference(self) -> float | None:
        return self.ours - self.reference if self.measured else None

    @property
    def verdict(self) -> str:
        """holds / inconclusive / fails, from the interval (or the point difference if exact)."""
        line = -self.margin if self.better == "lower" else self.margin
        if self.exact or self.legacy:
            if not self.measured:
                return "inconclusive"
            d = self.difference
            return "holds" if (d < line if self.better == "lower" else d > line) else "fails"
        if self.interval is None:
            return "inconclusive"
        lo, hi = self.interval
        if self.better == "lower":
            return "holds" if hi < line else "fails" if lo > line else "inconclusive"
        return "holds" if lo > line else "fails" if hi < line else "inconclusive"

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    def to_dict(self) -> dict:
        d = {
            "id": self.id,
            "statement": self.statement,
            "ours": _clean(self.ours),
            "reference": _clean(self.reference),
            "reference_name": self.reference_name,
            "better": self.better,
        }
        if self.legacy:
            return {**d, "holds": self.holds}
        return {**d, "exact": self.exact, "margin": self.margin,
                "interval": None if self.interval is None else [float(v) for v in self.interval],
                "verdict": self.verdict, "evidence": self.evidence or ("exact" if self.exact else "not measured"),
                "holds": self.holds}

    @classmethod
    def from_dict(cls, d: dict, legacy: bool = False) -> Claim:
        if legacy:
            return cls(id=d["id"], statement=d["statement"], ours=d.get("ours"), reference=d.get("reference"),
                       reference_name=d.get("reference_name", ""), better=d.get("better", "lower"),
                       evidence=LEGACY_EVIDENCE, legacy=True)
        interval = d.get("interval")
        if interval is not None:
            if not isinstance(interval, (list, tuple)):
                raise InputError(f"claim {d.get('id')!r}: interval must be a list [lo, hi], got {interval!r}")
            interval = tuple(interval)
        return cls(id=d["id"], statement=d["statement"], ours=d.get("ours"), reference=d.get("reference"),
                   reference_name=d.get("reference_name", ""), better=d.get("better", "lower"),
                   exact=bool(d.get("exact", False)), interval=interval, margin=d.get("margin", 0.0),
                   evidence=d.get("evidence", ""))


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
    seeds: list[int] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    wall_seconds: float | None = None
    status: str = "ok"
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"result kind must be one of {KINDS}, got {self.kind!r}")
        if self.status not in STATUSES:
            raise InputError(f"result status must be one of {STATUSES}, got {self.status!r}")

    def claim(self, id: str, statement: str, ours, reference, reference_name: str = "", better: Better = "lower",
              *, interval=None, exact: bool = False, margin: float = 0.0, evidence: str = "") -> Claim:
        """Add a claim; its verdict is computed, never given.

        `interval` is a `tenfold.core.stats.Interval` (its evidence line comes with it) or a pair
        (lo, hi) of ours - reference with `evidence` saying how it was made. Deterministic claims
        pass `exact=True` and no interval.
        """
        if interval is not None and hasattr(interval, "bounds"):
            evidence = evidence or interval.evidence
            interval = tuple(interval.bounds())
        elif interval is not None:
            interval = tuple(_as_float(v) for v in interval)
        c = Claim(id, statement, _as_float(ours), _as_float(reference), reference_name, better, exact=exact,
                  interval=interval, margin=float(margin), evidence=evidence or ("exact" if exact else ""))
        if any(existing.id == id for existing in self.claims):
            raise InputError(f"claim {id!r} is added twice to the {self.method} result: give each claim its own id")
        self.claims.append(c)
        return c

    def verdict_counts(self) -> dict[str, int]:
        """How many claims hold, are inconclusive and fail."""
        return {v: sum(c.verdict == v for c in self.claims) for v in VERDICTS}

    @property
    def claims_held(self) -> int:
        return sum(c.holds for c in self.claims)

    def to_dict(self) -> dict:
        d = {
            "schema": self.schema,
            "method": self.method,
            "kind": self.kind,
            "status": self.status,
            "paper": self.paper,
            "profile": self.profile,
            "seed": self.seed,
            "seeds": list(self.seeds) or [self.seed],
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
        """Write `folder/result.json` atomically (main process only) and return its path."""
        from tenfold.core.runtime import is_main_process

        path = Path(folder) / "result.json"
        return atomic_write_json(path, self.to_dict()) if is_main_process() else path

    @classmethod
    def from_dict(cls, d: Any, source: str = "result") -> Result:
        validate(d, source)
        legacy = d["schema"] == SCHEMA_V1
        return cls(
            method=d["method"],
            kind=d["kind"],
            paper=d["paper"],
            profile=d.get("profile", "quick"),
            seed=d.get("seed", 0),
            seeds=list(d.get("seeds", [])),
            config=d.get("config", {}),
            metrics=d.get("metrics", {}),
            claims=[Claim.from_dict(c, legacy) for c in d.get("claims", [])],
            artifacts=d.get("artifacts", []),
            environment=d.get("environment", {}),
            wall_seconds=d.get("wall_seconds"),
            status=d.get("status", "ok"),
            notes=d.get("notes", []),
            error=d.get("error"),
            schema=d["schema"],
        )


def _as_float(x: Any) -> float | None:
    if x is None:
        return None
    if hasattr(x, "item"):
        x = x.item()
    return float(x)


def validate(d: Any, source: str = "result") -> None:
    """Raise SchemaError naming `source` unless `d` is a well-formed tenfold.result/2 (or /1) record."""

    def fail(why: str) -> None:
        raise SchemaError(f"{source}: {why}; it is not a valid {SCHEMA} file (regenerate it or remove it)")

    if not isinstance(d, dict):
        fail("top level is not a JSON object")
    if d.get("schema") not in SCHEMAS:
        fail(f"schema is {d.get('schema')!r}, expected {SCHEMA!r}")
    for key, typ in (("method", str), ("kind", str), ("paper", dict), ("metrics", dict), ("claims", list)):
        if not isinstance(d.get(key), typ):
            fail(f"field {key!r} is missing or not a {typ.__name__}")
    if d["kind"] not in KINDS:
        fail(f"kind {d['kind']!r} is not one of {KINDS}")
    if d.get("status", "ok") not in STATUSES:
        fail(f"status {d.get('status')!r} is not one of {STATUSES}")
    legacy = d["schema"] == SCHEMA_V1
    for i, c in enumerate(d["claims"]):
        if not isinstance(c, dict) or not {"id", "statement", "better"} <= c.keys():
            fail(f"claim {i} lacks id/statement/better")
        if not legacy and "verdict" in c and c["verdict"] not in VERDICTS:
            fail(f"claim {c['id']!r} has verdict {c['verdict']!r}, not one of {', '.join(VERDICTS)}")
        try:
            claim = Claim.from_dict(c, legacy)
        except (InputError, TypeError) as err:
            fail(str(err))
        if not legacy and "verdict" in c and c["verdict"] != claim.verdict:
            fail(f"claim {c['id']!r} says verdict={c['verdict']!r} but its numbers say {claim.verdict!r}")
        if "holds" in c and c["holds"] != claim.holds:
            fail(f"claim {c['id']!r} says holds={c['holds']} but its numbers say {claim.holds}")


def load_result(path: str | os.PathLike) -> Result:
    """Load and validate a result.json."""
    path = Path(path)
    return Result.from_dict(read_json(path), source=str(path))
