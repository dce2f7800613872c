"""The tenfold.result/1 record: claims compute `holds`, files round-trip, bad files are rejected."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.results import SCHEMA, Claim, Result, load_result, validate

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@given(ours=finite, ref=finite)
def test_holds_follows_direction_for_any_numbers(ours, ref):
    assert Claim("c", "s", ours, ref, better="lower").holds == (ours < ref)
    assert Claim("c", "s", ours, ref, better="higher").holds == (ours > ref)


def test_holds_worked_examples():
    assert Claim("ppl", "lower ppl", 18.2, 21.5, "FLAP", "lower").holds
    assert not Claim("ppl", "lower ppl", 21.5, 18.2, "FLAP", "lower").holds
    assert Claim("auc", "higher auc", 0.9, 0.8, "GCCAD", "higher").holds
    assert not Claim("tie", "strictly better", 1.0, 1.0, better="higher").holds


@pytest.mark.parametrize("ours,ref", [(None, 1.0), (1.0, None), (math.nan, 1.0), (1.0, math.inf)])
def test_missing_or_nonfinite_numbers_never_hold(ours, ref):
    assert not Claim("c", "s", ours, ref, better="lower").holds
    assert not Claim("c", "s", ours, ref, better="higher").holds


def test_bad_direction_is_rejected():
    with pytest.raises(InputError, match="better"):
        Claim("c", "s", 1.0, 2.0, better="smaller")


def _sample() -> Result:
    r = Result(method="demo", kind="reproduce", paper={"title": "T", "arxiv": "0000.00000"},
               config={"ratio": 0.3}, metrics={"ppl": {"dense": {"0.1": 10.0}}, "nan": float("nan")})
    r.claim("lower", "ours lower", 1.0, 2.0, "base", "lower")
    r.claim("higher", "ours higher", 1.0, 2.0, "base", "higher")
    return r


def test_result_round_trips_through_json(tmp_path):
    r = _sample()
    path = r.write(tmp_path)
    d = json.loads(path.read_text())
    assert d["schema"] == SCHEMA
    assert [c["holds"] for c in d["claims"]] == [True, False]
    assert d["metrics"]["nan"] is None  # JSON has no NaN
    back = load_result(path)
    assert back.to_dict() == d
    assert back.claims_held == 1


def test_handwritten_holds_that_contradicts_numbers_is_rejected(tmp_path):
    d = _sample().to_dict()
    d["claims"][1]["holds"] = True
    with pytest.raises(SchemaError, match="holds"):
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
    p.write_text('{"schema": "tenfold.result/1", "method": ')
    with pytest.raises(SchemaError, match="not valid JSON") as err:
        load_result(p)
    assert str(p) in str(err.value)
