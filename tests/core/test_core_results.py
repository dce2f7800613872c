"""The tenfold.result/2 record: verdicts are computed from intervals, files round-trip, bad ones are refused."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.results import SCHEMA, SCHEMA_V1, Claim, Result, load_result, validate

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
small = st.floats(min_value=0, max_value=1e3, allow_nan=False)


def _stochastic(lo, hi, better="lower", margin=0.0):
    return Claim("c", "s", 1.0, 2.0, better=better, interval=(lo, hi), margin=margin, evidence="bootstrap")


@given(a=finite, b=finite, margin=small)
def test_verdict_is_set_by_where_the_interval_lies_for_any_interval(a, b, margin):
    lo, hi = min(a, b), max(a, b)
    lower = _stochastic(lo, hi, "lower", margin).verdict
    higher = _stochastic(lo, hi, "higher", margin).verdict
    assert lower == ("holds" if hi < -margin else "fails" if lo > -margin else "inconclusive")
    assert higher == ("holds" if lo > margin else "fails" if hi < margin else "inconclusive")
    # mirrored interval, mirrored direction: same verdict
    assert _stochastic(-hi, -lo, "higher", margin).verdict == lower


@given(ours=finite, ref=finite)
def test_exact_claims_are_the_point_comparison(ours, ref):
    assert Claim("c", "s", ours, ref, better="lower", exact=True).holds == (ours - ref < 0)
    assert Claim("c", "s", ours, ref, better="higher", exact=True).verdict == ("holds" if ours - ref > 0 else "fails")


def test_worked_examples_from_the_relife_and_looped_reviews():
    # NDCG@5 +0.003 [-0.019, +0.025]: a gap inside one standard error is not a win
    assert _stochastic(-0.019, 0.025, "higher").verdict == "inconclusive"
    assert _stochastic(0.004, 0.02, "higher").verdict == "holds"
    assert _stochastic(-0.03, -0.01, "higher").verdict == "fails"
    # a margin the interval must clear: +0.004 [0.002, 0.008] beats 0 but not a 0.01 margin
    assert _stochastic(0.002, 0.008, "higher", margin=0.01).verdict == "fails"
    assert _stochastic(0.002, 0.02, "higher", margin=0.01).verdict == "inconclusive"
    # the reference against itself: interval [0, 0] never holds
    assert _stochastic(0.0, 0.0, "lower").verdict == "inconclusive"
    assert not Claim("tie", "strictly better", 1.0, 1.0, better="higher", exact=True).holds


@pytest.mark.parametrize("ours,ref", [(None, 1.0), (1.0, None), (math.nan, 1.0), (1.0, math.inf)])
def test_unmeasured_numbers_are_inconclusive_never_holds(ours, ref):
    for exact in (True, False):
        c = Claim("c", "s", ours, ref, better="lower", exact=exact)
        assert c.verdict == "inconclusive" and not c.holds


@pytest.mark.parametrize("kwargs,why", [
    ({"better": "smaller", "exact": True}, "better"),
    ({}, "no interval"),
    ({"interval": (0.2, 0.1), "evidence": "b"}, "above its upper bound"),
    ({"interval": (0.0, math.inf), "evidence": "b"}, "finite"),
    ({"interval": (0.0, 1.0)}, "evidence"),
    ({"interval": (0.0, 1.0), "evidence": "b", "exact": True}, "exact claim has no interval"),
    ({"margin": -0.1, "exact": True}, "margin"),
])
def test_malformed_claims_are_refused_naming_the_claim(kwargs, why):
    with pytest.raises(InputError, match=why) as err:
        Claim("my_claim", "s", 1.0, 2.0, **kwargs)
    assert "my_claim" in str(err.value)


def _sample() -> Result:
    r = Result(method="demo", kind="reproduce", paper={"title": "T", "arxiv": "0000.00000"}, seeds=[0, 1, 2],
               config={"ratio": 0.3}, metrics={"ppl": {"dense": {"0.1": 10.0}}, "nan": float("nan")})
    r.claim("lower", "ours lower", 1.0, 2.0, "base", "lower", interval=(-1.5, -0.5), evidence="paired bootstrap")
    r.claim("higher", "ours higher", 1.0, 2.0, "base", "higher", interval=(-1.5, 0.2), evidence="paired bootstrap")
    r.claim("count", "fewer calls", 10, 200, "recompute", "lower", exact=True)
    return r


def test_result_round_trips_through_json_with_verdicts_and_seeds(tmp_path):
    r = _sample()
    path = r.write(tmp_path)
    d = json.loads(path.read_text())
    assert d["schema"] == SCHEMA and d["seeds"] == [0, 1, 2]
    assert [c["verdict"] for c in d["claims"]] == ["holds", "inconclusive", "holds"]
    assert [c["holds"] for c in d["claims"]] == [True, False, True]
    assert d["claims"][2]["interval"] is None and d["claims"][2]["evidence"] == "exact"
    assert d["metrics"]["nan"] is None  # JSON has no NaN
    back = load_result(path)
    assert back.to_dict() == d
    assert back.verdict_counts() == {"holds": 2, "inconclusive": 1, "fails": 0}


def test_result_claim_takes_a_stats_interval_with_its_evidence():
    from tenfold.core.stats import paired_bootstrap

    r = Result(method="demo", kind="reproduce", paper={})
    iv = paired_bootstrap([1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 3.5, 4.5], unit="list")
    c = r.claim("x", "s", 2.5, 3.0, better="lower", interval=iv)
    assert c.evidence == "paired bootstrap over 4 lists" and c.verdict == "holds"
    with pytest.raises(InputError, match="twice"):
        r.claim("x", "s", 2.5, 3.0, better="lower", interval=iv)


def test_schema_1_files_still_load_as_point_comparisons(tmp_path):
    old = {"schema": SCHEMA_V1, "method": "old", "kind": "reproduce", "paper": {}, "metrics": {},
           "claims": [{"id": "a", "statement": "s", "ours": 1.0, "reference": 2.0, "better": "lower", "holds": True},
                      {"id": "b", "statement": "s", "ours": 3.0, "reference": 2.0, "better": "lower", "holds": False}]}
    p = tmp_path / "result.json"
    p.write_text(json.dumps(old))
    r = load_result(p)
    assert [c.verdict for c in r.claims] == ["holds", "fails"]
    assert all(c.legacy and "/1" in c.evidence for c in r.claims)
    old["claims"][1]["holds"] = True  # a /1 file that contradicts its own numbers is still refused
    with pytest.raises(SchemaError, match="holds"):
        validate(old, "x.json")


@pytest.mark.parametrize("field,value,why", [
    ("holds", True, "holds"),
    ("verdict", "holds", "verdict"),
    ("verdict", "maybe", "not one of"),
    ("interval", [0.5, -0.5], "above its upper bound"),
    ("interval", None, "no interval"),
    ("interval", "wide", "interval must be"),
])
def test_handwritten_or_broken_claims_in_a_file_are_rejected(field, value, why):
    d = _sample().to_dict()
    d["claims"][1][field] = value
    with pytest.raises(SchemaError, match=why):
        validate(d, "x.json")


@pytest.mark.parametrize("mutate,why", [
    (lambda d: d.update(schema="other/1"), "schema"),
    (lambda d: d.pop("method"), "method"),
    (lambda d: d.update(kind="dance"), "kind"),
    (lambda d: d.update(claims="nope"), "claims"),
])
def test_foreign_records_are_rejected_with_the_file_named(tmp_path, mutate, why):
    d = _sample().to_dict()
    mutate(d)
    p = tmp_path / "result.json"
    p.write_text(json.dumps(d))
    with pytest.raises(SchemaError, match=why) as err:
        load_result(p)
    assert str(p) in str(err.value)


def test_corrupted_json_names_the_file(tmp_path):
    p = tmp_path / "result.json"
    p.write_text('{"schema": "tenfold.result/2", "method": ')
    with pytest.raises(SchemaError, match="not valid JSON") as err:
        load_result(p)
    assert str(p) in str(err.value)
