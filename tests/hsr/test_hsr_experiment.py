"""The experiment end to end on the smoke profile, and every claim's computation fed a null (negative
controls): a scan relabelled as ours, an index that drops keys, a stale cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tenfold.core.errors import InputError
from tenfold.core.results import Result
from tenfold.hsr.experiment import (
    add_dropin_claim,
    add_exactness_claims,
    add_real_key_claims,
    add_work_exponent_claim,
    log_slope,
    relu_error_random,
    reproduce,
    scaling_sweep,
    softmax_errors,
)


def _result() -> Result:
    return Result(method="hsr", kind="reproduce", paper={})


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("hsr-smoke")
    return reproduce("smoke", 0, out), out


def test_smoke_reproduce_reports_every_method_and_claim(smoke):
    result, out = smoke
    ids = {c.id for c in result.claims}
    assert {"relu_exact", "no_key_missed", "dropin_matches_dense", "sublinear_work_synthetic",
            "real_hsr_tree_work_below_30pct", "real_lowrank_keys_faster_than_dense_relu"} <= ids
    real = result.metrics["real_keys"]
    for s in real["summary"]:
        assert set(s["methods"]) == {"dense_relu", "sdpa", "topk_scan", "hsr_tree", "quest_blocks", "lowrank_blocks",
                                     "lowrank_keys"}
        for m in s["methods"].values():
            assert m["scored_fraction"] <= m["work_fraction"] + 1e-12
    assert len(real["participation_ratio"]["keys"]) == result.metrics["real_keys"]["heads"] // 2  # GQA: 2 per kv-head
    assert real["missed_keys_total"] == 0 and result.metrics["dropin"]["same_tokens"]
    assert "scored_exponent_interval" in result.metrics["scaling"]
    for name in result.artifacts:
        assert (out / name).is_file()
    json.dumps(result.to_dict())
    for c in result.claims:  # exact claims are deterministic; the rest carry intervals
        assert c.exact or c.interval is not None


def test_exactness_claims_fail_for_an_index_that_drops_keys():
    """Negative control: an error of 1e-2 or one missed key fails the exactness claims."""
    r = _result()
    add_exactness_claims(r, 1e-2, 1)
    assert [c.verdict for c in r.claims] == ["fails", "fails"]
    r = _result()
    add_exactness_claims(r, 1e-7, 0)
    assert [c.verdict for c in r.claims] == ["holds", "holds"]


def test_dropin_claim_fails_for_a_stale_cache():
    """Negative control: a cache reusing the previous prompt's keys (logit differences ~1, other tokens)."""
    r = _result()
    add_dropin_claim(r, {"prompts": 4, "max_abs_logit_diff": 1.3, "same_tokens": False})
    assert r.claims[0].verdict == "fails"
    r = _result()
    add_dropin_claim(r, {"prompts": 4, "max_abs_logit_diff": 2e-6, "same_tokens": True})
    assert r.claims[0].verdict == "holds"


def test_work_exponent_claim_does_not_hold_for_a_scan():
    """Negative control: a scan scores n keys at every n (exponent exactly 1): not 'holds'."""
    ns = [1024, 2048, 4096, 8192]
    r = _result()
    add_work_exponent_claim(r, ns, np.tile(np.array(ns, float), (8, 1)))
    assert r.claims[0].verdict != "holds" and r.claims[0].ours == pytest.approx(1.0)
    r = _result()
    rng = np.random.default_rng(0)
    add_work_exponent_claim(r, ns, np.array(ns, float) ** 0.5 * rng.uniform(0.8, 1.2, (8, 4)))
    assert r.claims[0].verdict == "holds"


def _rows(work, seconds, dense_seconds, heads=6, queries=5, n=4096):
    rows = []
    for h in range(heads):
        row = {"n": n, "head": h, "work": {}, "seconds": {}, "scored": {}}
        for m in ("hsr_tree", "lowrank_keys"):
            row["work"][m] = [work] * queries
            row["seconds"][m] = list(seconds + 1e-6 * np.arange(queries) * (h + 1))
        row["seconds"]["dense_relu"] = list(dense_seconds + 1e-6 * np.arange(queries))
        rows.append(row)
    return rows


def test_real_key_claims_do_not_hold_for_dense_relabelled_as_ours():
    """Negative control: a scan (work 1.0, dense's own time) relabelled as an index: no claim holds."""
    r = _result()
    add_real_key_claims(r, _rows(1.0, 1e-3, 1e-3), 4096)
    assert all(c.verdict != "holds" for c in r.claims)
    r = _result()
    add_real_key_claims(r, _rows(0.1, 1e-4, 1e-3), 4096)  # a real 10x saving holds
    assert all(c.verdict == "holds" for c in r.claims)


def test_log_slope_is_the_fitted_exponent():
    ns = [10, 100, 1000]
    assert log_slope(ns, np.array([ns]) ** 0.7 * 3.0) == pytest.approx(0.7)


def test_scaling_sweep_counts_scored_and_reported_keys_per_query():
    res = scaling_sweep([512, 1024], d=8, decay=0.6, queries=3, alpha=1, seed=0, reps=1)
    scored, reported = np.array(res["per_query"]["scored"]), np.array(res["per_query"]["reported"])
    assert scored.shape == (3, 2) and (reported <= scored).all() and (scored > 0).all()
    assert 1.0 <= res["participation_ratio"] <= 8.0
    assert res["scored_exponent_interval"][0] <= res["scored_exponent"] <= res["scored_exponent_interval"][1]


def test_relu_error_and_softmax_bound_on_small_inputs():
    assert relu_error_random(0, n=512, d=8) < 1e-5
    for row in softmax_errors(0, n=1024, d=8):
        assert row["rel_err"] <= row["bound_rel"] + 1e-4  # the bound holds (plus float32 round-off)


def test_unknown_profile_is_refused(tmp_path):
    with pytest.raises(InputError, match="profiles"):
        reproduce("tiny", 0, tmp_path)


class _BuiltZooModel:
    def __init__(self, corpus):
        self.corpus = corpus

    def is_built(self):
        return True

    def info(self):
        return {"corpus": self.corpus}


class _Available:
    def available(self):
        return True


def test_real_key_text_is_the_held_out_split_of_the_models_own_corpus(monkeypatch, tmp_path):
    """A zoo LM built on python-topics reads python-topics' validation split even when python-docs is
    installed: python-docs' validation documents share text with python-topics' training documents (the
    topics are excerpts of the same documentation), so they are not held out from such a model."""
    import tenfold.data.registry as data_registry
    import tenfold.zoo.registry as zoo_registry
    from tenfold.hsr.experiment import _lm

    monkeypatch.setattr(data_registry, "get_dataset", lambda name: _Available())
    for corpus in ("python-topics", "python-docs"):
        monkeypatch.setattr(zoo_registry, "get_model", lambda name, c=corpus: _BuiltZooModel(c))
        assert _lm("quick", 0, tmp_path) == ("tiny-lm-long", corpus)
