"""Refresh costs (calls, prompt volume, staleness) on hand-worked streams, and the frontier claims'
negative control (a lazy-KAR point relabelled as LIBER must not beat the curve it lies on)."""

from __future__ import annotations

import math

import pytest

from tenfold.core.errors import InputError
from tenfold.core.results import Result
from tenfold.liber.experiment import _frontier_claims
from tenfold.liber.freshness import (
    RefreshCost,
    dominates,
    interpolate,
    lazy_kar_cost,
    liber_cost,
    recompute_cost,
)
from tenfold.liber.partition import Behavior, CountRule


def stream(times):
    return [Behavior(str(i), float(t), 4.0, ("Drama",)) for i, t in enumerate(times)]


def test_liber_cost_counts_closed_partitions_and_uncovered_behaviours():
    # K = 2 on t = 1..5: partitions {1,2} closed at 2 and {3,4} closed at 4; behaviour 5 stays in the cache
    c = liber_cost({"u": stream([1, 2, 3, 4, 5])}, CountRule(2))
    # sample ages: t=1: 0, t=2: 1 (partition closes at 2, not before), t=3: 0, t=4: 1, t=5: 0
    assert (c.calls, c.prompt_lines, c.samples) == (2, 4, 5)
    assert c.staleness == pytest.approx(2 / 5)


def test_lazy_kar_refreshes_once_per_active_period_with_the_whole_history():
    # period 10: windows [0,10) holds t=1,2,3; [10,20) is empty; [20,30) holds t=21,22
    c = lazy_kar_cost({"u": stream([1, 2, 3, 21, 22])}, 10.0)
    # refreshes at 10 (3 lines) and 30 (5 lines); ages: 0, 1, 2 (nothing before t's window), then 0, 1
    assert (c.calls, c.prompt_lines) == (2, 8)
    assert c.staleness == pytest.approx((0 + 1 + 2 + 0 + 1) / 5)


def test_recompute_is_never_stale_and_resends_the_history():
    c = recompute_cost({"u": stream([1, 2, 3]), "v": stream([5, 6])})
    assert (c.calls, c.staleness, c.prompt_lines) == (5, 0.0, 6 + 3)


def test_interpolation_is_log_linear_between_bracketing_points_and_flat_outside():
    pts = [RefreshCost("a", 1000, 0.0, 0, 1), RefreshCost("b", 10, 10.0, 0, 1)]
    assert interpolate(pts, 5.0) == pytest.approx(100.0)  # exp of the midpoint of log 1000 and log 10
    assert interpolate(pts, 20.0) == 10.0 and interpolate(pts, 0.0) == 1000.0
    assert math.isclose(interpolate(pts, 2.5), 10 ** 2.5)
    with pytest.raises(InputError):
        lazy_kar_cost({"u": stream([1])}, 0.0)


def test_dominance_is_fewer_or_equal_calls_and_lower_or_equal_staleness_so_a_tie_counts():
    a, b, c = RefreshCost("a", 10, 1.0, 0, 1), RefreshCost("b", 10, 2.0, 0, 1), RefreshCost("c", 5, 3.0, 0, 1)
    assert dominates(a, b) and not dominates(b, a) and dominates(a, a)  # a tie leaves the other no advantage
    assert not dominates(c, a) and not dominates(a, c)  # each better on one axis


def _costs(liber: RefreshCost) -> dict:
    kar = {"lazy KAR 1h": RefreshCost("lazy KAR 1h", 300, 20.0, 3000, 100),
           "lazy KAR 1d": RefreshCost("lazy KAR 1d", 100, 40.0, 2000, 100),
           "KAR recompute": RefreshCost("KAR recompute", 10_000, 0.0, 500_000, 100)}
    return {"LIBER": liber, **kar}


def test_frontier_claims_hold_for_a_point_below_the_curve():
    result = Result(method="liber", kind="reproduce", paper={})
    _frontier_claims(result, _costs(RefreshCost("LIBER", 200, 10.0, 1000, 100)), "count:20")
    assert all(c.verdict == "holds" for c in result.claims)


def test_frontier_claims_negative_control_a_kar_point_relabelled_as_liber_does_not_hold():
    result = Result(method="liber", kind="reproduce", paper={})
    costs = _costs(RefreshCost("LIBER", 300, 20.0, 3000, 100))  # exactly lazy KAR 1h, relabelled
    _frontier_claims(result, costs, "count:20")
    verdicts = {c.id: c.verdict for c in result.claims}
    assert verdicts["liber_calls_below_kar_frontier"] != "holds"
    assert verdicts["liber_prompt_volume_below_kar_frontier"] != "holds"
    dominated = Result(method="liber", kind="reproduce", paper={})
    _frontier_claims(dominated, _costs(RefreshCost("LIBER", 400, 25.0, 4000, 100)), "count:20")  # worse than 1h
    assert {c.id: c.verdict for c in dominated.claims}["no_lazy_kar_period_dominates_liber"] == "fails"


# the quick run's lazy-KAR points (calls, staleness, prompt lines): exp(log(x)) rounds above x for some of
# these counts, so a point relabelled as LIBER must be compared with its own exact value, not a round trip
_QUICK_KAR = {"lazy KAR 1min": (32_061, 2.0, 3_199_202), "lazy KAR 10min": (7_693, 14.1, 860_700),
              "lazy KAR 1h": (3_620, 45.1, 467_604), "lazy KAR 6h": (2_733, 64.7, 378_762)}


@pytest.mark.parametrize("relabelled", sorted(_QUICK_KAR))
def test_frontier_claims_negative_control_on_the_quick_runs_kar_points(relabelled):
    kar = {k: RefreshCost(k, c, s, lines, 1000) for k, (c, s, lines) in _QUICK_KAR.items()}
    kar["KAR recompute"] = RefreshCost("KAR recompute", 100_000, 0.0, 10_150_406, 1000)
    point = kar[relabelled]
    assert interpolate(list(kar.values()), point.staleness, "calls") == point.calls
    assert interpolate(list(kar.values()), point.staleness, "prompt_lines") == point.prompt_lines
    result = Result(method="liber", kind="reproduce", paper={})
    _frontier_claims(result, {"LIBER": RefreshCost("LIBER", point.calls, point.staleness, point.prompt_lines, 1000),
                              **kar}, "count:20")
    assert all(c.verdict != "holds" for c in result.claims), {c.id: c.verdict for c in result.claims}


def test_interpolation_at_a_shared_staleness_takes_the_cheapest_point():
    pts = [RefreshCost("a", 50, 5.0, 7, 1), RefreshCost("b", 40, 5.0, 9, 1), RefreshCost("c", 10, 9.0, 1, 1)]
    assert interpolate(pts, 5.0) == 40.0 and interpolate(pts, 5.0, "prompt_lines") == 7.0
