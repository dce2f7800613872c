"""UBSP, User Behavior Streaming Partition (LIBER sec. UBSP).

Each user's stream is a short-term *cache* (open, never sent to the LLM) plus a long-term memory of
*closed partitions*. A new behavior is appended to the cache; when the partition rule fires, the
cache is frozen into a partition and emptied. Only closed partitions reach the LLM, once each.

Rule semantics (evaluated after each append, on the cache including the new behavior):
  CountRule(k)               len(cache) >= k                                   (paper: "exceeds K")
  TimeWindowRule(w, max_len) cache[-1].t - cache[0].t >= w  or  len >= max_len  [R]
  InterestShiftRule(tau, m)  len >= m and genre-histogram cosine distance(cache, last partition) > tau,
                             or len >= max_len                                   [R]
  AnyRule / AllRule          logical or / and of their rules
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tenfold.core.errors import InputError, SchemaError

STATE_SCHEMA = "tenfold.liber.ubsp/1"


@dataclass(frozen=True)
class Behavior:
    """One interaction: item, time, rating (None when implicit) and the item's genres/categories."""

    item_id: str
    timestamp: float
    rating: float | None = None
    genres: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"item_id": self.item_id, "timestamp": self.timestamp, "rating": self.rating, "genres": list(self.genres)}

    @classmethod
    def from_dict(cls, d: dict) -> Behavior:
        return cls(str(d["item_id"]), float(d["timestamp"]), None if d.get("rating") is None else float(d["rating"]),
                   tuple(d.get("genres", ())))


@dataclass(frozen=True)
class Partition:
    """A closed, immutable block of behaviors; `closed_at` is the time of its last behavior."""

    pid: int
    behaviors: tuple[Behavior, ...]

    @property
    def closed_at(self) -> float:
        return self.behaviors[-1].timestamp

    def to_dict(self) -> dict:
        return {"pid": self.pid, "behaviors": [b.to_dict() for b in self.behaviors]}

    @classmethod
    def from_dict(cls, d: dict) -> Partition:
        return cls(int(d["pid"]), tuple(Behavior.from_dict(b) for b in d["behaviors"]))


def genre_histogram(behaviors: Iterable[Behavior]) -> Counter:
    counts: Counter = Counter()
    for b in behaviors:
        counts.update(b.genres)
    return counts


def cosine_distance(a: Counter, b: Counter) -> float:
    """1 - cos(a, b) of two sparse count vectors (1.0 when either is empty)."""
    dot = sum(a[k] * b.get(k, 0) for k in a)
    na, nb = math.sqrt(sum(v * v for v in a.values())), math.sqrt(sum(v * v for v in b.values()))
    return 1.0 if na == 0 or nb == 0 else 1.0 - dot / (na * nb)


class PartitionRule:
    """Decides, after each append, whether the cache becomes a closed partition."""

    kind = ""

    def closes(self, cache: list[Behavior], last: Partition | None) -> bool:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class CountRule(PartitionRule):
    k: int = 20  # lineage block lengths 20/50/100/200 (HiT-LBM); K itself unverified [R]
    kind = "count"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InputError(f"CountRule k must be >= 1, got {self.k}")

    def closes(self, cache, last):
        return len(cache) >= self.k

    def to_dict(self):
        return {"kind": self.kind, "k": self.k}


@dataclass(frozen=True)
class TimeWindowRule(PartitionRule):
    window: float = 7 * 86400.0  # seconds
    max_len: int = 50  # keeps a partition within the LLM's input limit
    kind = "time"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window) and self.window > 0) or self.max_len < 1:
            raise InputError(f"TimeWindowRule needs window > 0 and max_len >= 1, got {self.window}, {self.max_len}")

    def closes(self, cache, last):
        return cache[-1].timestamp - cache[0].timestamp >= self.window or len(cache) >= self.max_len

    def to_dict(self):
        return {"kind": self.kind, "window": self.window, "max_len": self.max_len}


@dataclass(frozen=True)
class InterestShiftRule(PartitionRule):
    tau: float = 0.5
    min_len: int = 5
    max_len: int = 50
    kind = "shift"

    def __post_init__(self) -> None:
        if not 0 <= self.tau <= 1 or self.min_len < 1 or self.max_len < self.min_len:
            raise InputError(f"InterestShiftRule needs 0<=tau<=1 and 1<=min_len<=max_len, got "
                             f"{self.tau}, {self.min_len}, {self.max_len}")

    def closes(self, cache, last):
        if len(cache) >= self.max_len:
            return True
        if len(cache) < self.min_len or last is None:
            return False
        return cosine_distance(genre_histogram(cache), genre_histogram(last.behaviors)) > self.tau

    def to_dict(self):
        return {"kind": self.kind, "tau": self.tau, "min_len": self.min_len, "max_len": self.max_len}


@dataclass(frozen=True)
class AnyRule(PartitionRule):
    rules: tuple[PartitionRule, ...] = ()
    kind = "any"

    def closes(self, cache, last):
        return any(r.closes(cache, last) for r in self.rules)

    def to_dict(self):
        return {"kind": self.kind, "rules": [r.to_dict() for r in self.rules]}


@dataclass(frozen=True)
class AllRule(PartitionRule):
    rules: tuple[PartitionRule, ...] = ()
    kind = "all"

    def closes(self, cache, last):
        return bool(self.rules) and all(r.closes(cache, last) for r in self.rules)

    def to_dict(self):
        return {"kind": self.kind, "rules": [r.to_dict() for r in self.rules]}


def rule_from_dict(d: dict) -> PartitionRule:
    kind = d.get("kind")
    args = {k: v for k, v in d.items() if k != "kind"}
    if kind in ("any", "all"):
        rules = tuple(rule_from_dict(r) for r in args.get("rules", []))
        return AnyRule(rules) if kind == "any" else AllRule(rules)
    classes = {"count": CountRule, "time": TimeWindowRule, "shift": InterestShiftRule}
    if kind not in classes:
        raise SchemaError(f"unknown partition rule kind {kind!r}; expected one of count, time, shift, any, all")
    return classes[kind](**args)


def parse_rule(text: str) -> PartitionRule:
    """CLI syntax: 'count:20', 'time:604800:50', 'shift:0.5:5:50', joined by '|' (any) or '&' (all)."""
    text = text.strip()
    if "|" in text:
        return AnyRule(tuple(parse_rule(t) for t in text.split("|")))
    if "&" in text:
        return AllRule(tuple(parse_rule(t) for t in text.split("&")))
    kind, *nums = text.split(":")
    try:
        if kind == "count" and len(nums) == 1:
            return CountRule(int(nums[0]))
        if kind == "time" and 1 <= len(nums) <= 2:
            return TimeWindowRule(float(nums[0]), *(int(n) for n in nums[1:]))
        if kind == "shift" and 1 <= len(nums) <= 3:
            return InterestShiftRule(float(nums[0]), *(int(n) for n in nums[1:]))
    except ValueError as err:
        raise InputError(f"partition rule {text!r} has a non-numeric argument ({err})") from err
    raise InputError(f"partition rule {text!r} not understood: use count:K, time:SECONDS[:MAXLEN], "
                     "shift:TAU[:MINLEN[:MAXLEN]], combined with | (any) or & (all)")


@dataclass
class UserStream:
    """One user's UBSP state: closed partitions (long-term memory) and the open cache."""

    partitions: list[Partition] = field(default_factory=list)
    cache: list[Behavior] = field(default_factory=list)

    @property
    def last_time(self) -> float | None:
        if self.cache:
            return self.cache[-1].timestamp
        return self.partitions[-1].closed_at if self.partitions else None


class StreamingPartitioner:
    """Per-user streaming state; `on_event` appends a behavior and returns the partition it closed, if any."""

    def __init__(self, rule: PartitionRule):
        self.rule = rule
        self.users: dict[str, UserStream] = {}

    def on_event(self, user: str, behavior: Behavior) -> Partition | None:
        stream = self.users.setdefault(str(user), UserStream())
        last_time = stream.last_time
        if last_time is not None and behavior.timestamp < last_time:
            raise InputError(f"user {user}: behavior at t={behavior.timestamp} arrives after t={last_time}; "
                             "timestamps must be non-decreasing per user (sort the history by time)")
        stream.cache.append(behavior)
        last = stream.partitions[-1] if stream.partitions else None
        if not self.rule.closes(stream.cache, last):
            return None
        partition = Partition(len(stream.partitions), tuple(stream.cache))
        stream.partitions.append(partition)
        stream.cache = []
        return partition

    def extend(self, user: str, behaviors: Iterable[Behavior]) -> list[Partition]:
        """Feed many behaviors; return the partitions they closed (in order)."""
        closed = [self.on_event(user, b) for b in behaviors]
        return [p for p in closed if p is not None]

    def partitions(self, user: str) -> list[Partition]:
        return list(self.users[str(user)].partitions) if str(user) in self.users else []

    def to_dict(self) -> dict:
        return {"schema": STATE_SCHEMA, "rule": self.rule.to_dict(),
                "users": {u: {"partitions": [p.to_dict() for p in s.partitions],
                              "cache": [b.to_dict() for b in s.cache]} for u, s in self.users.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> StreamingPartitioner:
        if not isinstance(d, dict) or d.get("schema") != STATE_SCHEMA:
            raise SchemaError(f"not a UBSP state (expected schema {STATE_SCHEMA!r}): rebuild it with `tenfold liber partition`")
        part = cls(rule_from_dict(d["rule"]))
        for u, s in d["users"].items():
            part.users[u] = UserStream([Partition.from_dict(p) for p in s["partitions"]],
                                       [Behavior.from_dict(b) for b in s["cache"]])
        return part

    @classmethod
    def from_json(cls, text: str) -> StreamingPartitioner:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise SchemaError(f"UBSP state is not valid JSON ({err.msg}): rebuild it") from err
        try:
            return cls.from_dict(d)
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SchemaError(f"UBSP state is incomplete or malformed ({type(err).__name__}: {err}): rebuild it "
                              "with `tenfold liber partition`") from err

    @classmethod
    def load(cls, path: str | os.PathLike) -> StreamingPartitioner:
        """Read a state file; an empty, binary, truncated or foreign file is one SchemaError naming it."""
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise SchemaError(f"{path} is not a UBSP state (not UTF-8 text; expected the JSON written by "
                              "`tenfold liber partition`): delete it or pass another --state") from err
        if not text.strip():
            raise SchemaError(f"{path} is empty (expected the JSON written by `tenfold liber partition`): delete it "
                              "or pass another --state")
        try:
            return cls.from_json(text)
        except SchemaError as err:
            raise SchemaError(f"{path}: {err}") from err


def partition_history(history: list[Behavior], rule: PartitionRule) -> tuple[list[Partition], list[Behavior]]:
    """Batch build: cut a whole (time-sorted) history into closed partitions and the open cache.

    Works on index ranges rather than a mutable cache, so it is an independent path to `on_event`
    (the property test checks both give identical partitions).
    """
    if not history:
        raise InputError("empty history: a user needs at least one behavior to be partitioned")
    times = [b.timestamp for b in history]
    if any(b < a for a, b in zip(times, times[1:], strict=False)):
        raise InputError("history timestamps are not sorted: sort each user's behaviors by time first")
    cuts, start = [], 0
    for end in range(1, len(history) + 1):
        last = Partition(len(cuts) - 1, tuple(history[cuts[-1][0]:cuts[-1][1]])) if cuts else None
        if rule.closes(history[start:end], last):
            cuts.append((start, end))
            start = end
    parts = [Partition(i, tuple(history[a:b])) for i, (a, b) in enumerate(cuts)]
    return parts, list(history[start:])


def usable_partitions(partitions: list[Partition], t: float) -> list[Partition]:
    """The partitions a CTR sample at time t may use: those closed strictly before t (no leakage)."""
    return [p for p in partitions if p.closed_at < t]
