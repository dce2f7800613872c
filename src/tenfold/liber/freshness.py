"""What keeping user summaries fresh costs: LLM calls and prompt volume against staleness.

Every policy keeps one summary source per user up to date as behaviours arrive:
* LIBER (incremental): one call per closed partition; the summaries usable at time t cover the
  partitions closed strictly before t.
* lazy KAR at period P: at the end of every period in which the user was active, one call
  summarises the user's whole history so far; at time t the summary covers every behaviour before
  the start of t's period.
* recompute (KAR on every update, the paper's "recurrent calls upon each update"): one whole-history
  call after every behaviour; nothing is ever stale.

Staleness of a sample = the number of the user's earlier behaviours its summaries do not cover
(the age of the summary, in behaviours), averaged over all samples. Prompt volume = behaviour lines
sent to the LLM in all (a whole-history prompt re-sends the history). Everything here is a
deterministic count over the data, so claims built on it are exact.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tenfold.core.errors import InputError
from tenfold.liber.partition import Behavior, PartitionRule, partition_history

PERIODS = {"1min": 60.0, "10min": 600.0, "1h": 3600.0, "6h": 6 * 3600.0, "1d": 86400.0, "1w": 7 * 86400.0, "30d": 30 * 86400.0}


@dataclass(frozen=True)
class RefreshCost:
    policy: str
    calls: int
    staleness: float  # mean over samples, in behaviours
    prompt_lines: int  # behaviour lines sent to the LLM
    samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check(histories: Mapping[str, Sequence[Behavior]]) -> None:
    if not histories or not any(histories.values()):
        raise InputError("no behaviours to measure refresh costs on")


def liber_cost(histories: Mapping[str, Sequence[Behavior]], rule: PartitionRule, name: str = "LIBER") -> RefreshCost:
    _check(histories)
    calls = lines = samples = 0
    age = 0.0
    for history in histories.values():
        if not history:
            continue
        parts, _ = partition_history(list(history), rule)
        calls += len(parts)
        lines += sum(len(p.behaviors) for p in parts)
        closed = [p.closed_at for p in parts]
        covered = np.concatenate([[0], np.cumsum([len(p.behaviors) for p in parts])])
        for j, b in enumerate(history):
            age += j - covered[bisect.bisect_left(closed, b.timestamp)]  # partitions closed strictly before t
        samples += len(history)
    return RefreshCost(name, calls, float(age / samples), lines, samples)


def lazy_kar_cost(histories: Mapping[str, Sequence[Behavior]], period: float, name: str | None = None) -> RefreshCost:
    if not period > 0:
        raise InputError(f"a refresh period must be positive, got {period}")
    _check(histories)
    calls = lines = samples = 0
    age = 0.0
    for history in histories.values():
        if not history:
            continue
        times = np.array([b.timestamp for b in history])
        window = np.floor(times / period)
        active = np.unique(window)
        calls += len(active)
        lines += int(np.searchsorted(times, (active + 1) * period, side="left").sum())  # history at each refresh
        covered = np.searchsorted(times, window * period, side="left")  # behaviours before t's period
        age += float((np.arange(len(times)) - covered).sum())
        samples += len(times)
    return RefreshCost(name or f"lazy KAR {period:g}s", calls, float(age / samples), lines, samples)


def recompute_cost(histories: Mapping[str, Sequence[Behavior]]) -> RefreshCost:
    _check(histories)
    n = [len(h) for h in histories.values()]
    return RefreshCost("KAR recompute", sum(n), 0.0, sum(k * (k + 1) // 2 for k in n), sum(n))


def interpolate(points: Sequence[RefreshCost], staleness: float, what: str = "calls") -> float:
    """`what` (calls or prompt_lines) of the policy curve through `points` at `staleness`: linear in
    log(what) between the two points that bracket it; beyond the stalest point, that point's value.

    At a point's own staleness the value is that point's exact count (the cheapest of several points
    there), not exp(log(count)), which can round above the count and let a point beat itself."""
    pts = sorted(points, key=lambda p: p.staleness)
    if not pts:
        raise InputError("no reference policies to interpolate")
    at = [getattr(p, what) for p in pts if p.staleness == staleness]
    if at:
        return float(min(at))
    xs = [p.staleness for p in pts]
    if staleness < xs[0]:
        return float(getattr(pts[0], what))
    if staleness > xs[-1]:
        return float(getattr(pts[-1], what))
    k = bisect.bisect_right(xs, staleness)  # xs[k - 1] < staleness < xs[k]
    (x0, p0), (x1, p1) = (xs[k - 1], pts[k - 1]), (xs[k], pts[k])
    y0, y1 = (math.log(max(getattr(p, what), 1)) for p in (p0, p1))
    return float(math.exp(y0 + (y1 - y0) * (staleness - x0) / (x1 - x0)))


def dominates(a: RefreshCost, b: RefreshCost) -> bool:
    """a is at least as good as b on both axes: fewer-or-equal calls and lower-or-equal staleness (a tie
    counts: a policy that matches b on both leaves b no advantage)."""
    return a.calls <= b.calls and a.staleness <= b.staleness
