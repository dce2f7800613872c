"""The whole reproduce pipeline on the seconds-long smoke profile, and every claim's computation fed a
null (negative controls)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tenfold.core.errors import InputError
from tenfold.core.results import Result
from tenfold.plmscale.experiment import (
    add_coverage_claims,
    add_exponent_claim,
    add_paper_table_claims,
    add_split_claim,
    add_transfer_claim,
    reproduce,
)


def _result() -> Result:
    return Result(method="plmscale", kind="reproduce", paper={})


def test_smoke_reproduce_writes_required_metrics_claims_and_plots(tmp_path):
    result = reproduce("smoke", 0, tmp_path)
    for obj in ("clm", "mlm"):
        for method in ("raw", "parabola"):
            iso = result.metrics[obj]["isoflop"][method]
            assert {"a", "b", "a_ci", "b_ci", "by_count"} <= set(iso)
            assert set(iso["by_count"]) == {"exact", "6nd"} and iso["by_count"]["6nd"]["a_ci"] is not None
        assert "allocation_exponent" in result.metrics[obj]["parametric"]
    assert set(result.metrics["paper"]) == {"clm", "mlm"}
    assert {"coverage", "coverage_all", "first_dataset"} <= set(result.metrics["recovery"])
    assert {"runs", "positive_fraction", "law", "points"} <= set(result.metrics["transfer"])
    assert 0.0 <= result.metrics["compute_split"]["clm_share"] < 1.0
    ids = {c.id for c in result.claims}
    assert {"recovers_known_exponent_a", "recovers_known_coefficients", "mlm_a_exceeds_clm_a",
            "clm_init_saves_mlm_tokens", "clm_share_positive"} <= ids
    for c in result.claims:
        assert c.exact or c.interval is not None
    for name in result.artifacts:
        assert (tmp_path / name).is_file(), name
    json.dumps(result.to_dict())  # serialisable as result.json
    assert any("synthetic data" in n for n in result.notes)
    assert json.loads((tmp_path / "transfer_fit.json").read_text())["law"] == "transfer_split"


def test_coverage_claims_do_not_hold_for_intervals_that_miss():
    """Negative control: intervals covering the truth 80% of the time (too narrow) do not pass 85%."""
    rec = {"covered": {"a": 80}, "datasets": 100, "coverage": {"a": 0.8}, "covered_all": 400, "cases_all": 500,
           "coverage_all": 0.8}
    r = _result()
    add_coverage_claims(r, rec)
    assert all(c.verdict != "holds" for c in r.claims)
    rec = {"covered": {"a": 99}, "datasets": 100, "coverage": {"a": 0.99}, "covered_all": 495, "cases_all": 500,
           "coverage_all": 0.99}
    r = _result()
    add_coverage_claims(r, rec)
    assert all(c.verdict == "holds" for c in r.claims)


def _summary(a, reps):
    return {"isoflop": {"raw": {"a": a}}, "replicates": {"raw": {"a": np.asarray(reps, float)}}}


def test_exponent_claim_does_not_hold_for_clm_relabelled_as_mlm():
    rng = np.random.default_rng(0)
    reps = 0.5 + 0.05 * rng.standard_normal(200)
    r = _result()
    add_exponent_claim(r, {"clm": _summary(0.5, reps), "mlm": _summary(0.5, reps)})
    assert r.claims[0].verdict != "holds"
    r = _result()
    add_exponent_claim(r, {"clm": _summary(0.5, reps), "mlm": _summary(0.8, reps + 0.3)})
    assert r.claims[0].verdict == "holds"


def test_transfer_claim_does_not_hold_when_transfer_does_nothing():
    runs = [{"d_t_over_d_f": list(np.random.default_rng(i).normal(0, 0.1, 8))} for i in range(3)]
    r = _result()
    add_transfer_claim(r, {"runs": runs})
    assert r.claims[0].verdict != "holds"


def test_split_claim_does_not_hold_without_a_transfer_gain():
    from tenfold.core.stats import one_sample

    r = _result()
    add_split_claim(r, {"flops": 1e10, "clm_share": 0.0}, one_sample(np.zeros(10), 0.0))
    assert r.claims[0].verdict != "holds"
    r = _result()
    add_split_claim(r, {"flops": 1e10, "clm_share": 0.005}, one_sample(np.full(10, 0.005), 0.0))
    assert r.claims[0].verdict != "holds"  # under the 1% margin


def test_paper_table_claims_fail_for_an_estimator_off_by_more_than_the_tolerance():
    table = {o: {"paper_a": a, "raw": {"a": a + 0.05}, "parabola": {"a": a + 0.06}} for o, a in (("clm", .578), ("mlm", .776))}
    r = _result()
    add_paper_table_claims(r, table)
    assert [c.verdict for c in r.claims] == ["fails", "fails"]
    table = {o: {"paper_a": a, "raw": {"a": a - 0.007}, "parabola": {"a": a + 0.06}} for o, a in (("clm", .578), ("mlm", .776))}
    r = _result()
    add_paper_table_claims(r, table)
    assert [c.verdict for c in r.claims] == ["holds", "holds"]


def test_unknown_profile_is_refused(tmp_path):
    with pytest.raises(InputError, match="profiles"):
        reproduce("tiny", 0, tmp_path)
