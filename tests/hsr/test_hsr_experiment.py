"""The experiment's pieces run on tiny sizes and report what the issue names."""

from __future__ import annotations

from tenfold.hsr.experiment import relu_error_random, scaling_sweep, softmax_errors


def test_scaling_sweep_reports_every_method_and_an_exponent():
    res = scaling_sweep([2048, 4096], d=8, decay=0.6, queries=2, alpha=1, seed=0)
    for p in res["points"]:
        assert {"n", "hsr_seconds", "dense_seconds", "blockbound_seconds", "topk_scan_seconds", "touched_fraction"} <= p.keys()
        assert 0 < p["touched_fraction"] <= 1
    assert res["hsr_time_exponent"] == res["hsr_time_exponent"]  # finite, not NaN


def test_relu_error_and_softmax_bound_on_small_inputs():
    assert relu_error_random(0, n=512, d=8) < 1e-5
    for row in softmax_errors(0, n=1024, d=8):
        assert row["rel_err"] <= row["bound_rel"] + 1e-4  # the bound holds (plus float32 round-off)
