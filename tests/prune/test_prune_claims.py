"""Every claim's own computation fed a null result must not hold (negative controls), and real
differences do hold; the intervals are paired over the same evaluation windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tenfold.core.results import Result
from tenfold.prune.experiment import (
    BASELINES,
    PROFILES,
    Setting,
    image_claims,
    language_claims,
    linear_cost_claim,
    ppl_claim,
    throughput_claim,
    variants,
)


def _result():
    return Result(method="prune", kind="reproduce", paper={})


def _windows(seed, n=40, shift=0.0):
    g = np.random.default_rng(seed)
    return 3.0 + 0.3 * g.standard_normal(n) + shift


def _language_metrics(st: Setting, nll_of):
    """Metrics shaped like run_language's, every variant's per-window NLL given by nll_of(label)."""
    nll, ppl = {}, {}
    for r in st.ratios:
        key = f"{r:g}"
        for alloc in st.allocations:
            labels = [v[0] for v in variants(alloc)] + [f"{b}+ls" for b in BASELINES]
            for label in labels:
                nll[f"{key}|{alloc}|{label}"] = nll_of(label)
                ppl.setdefault(key, {}).setdefault(alloc, {})[label] = float(np.exp(nll_of(label).mean()))
    return {"ppl": ppl, "_nll": nll}


def test_language_claims_never_hold_when_every_variant_is_the_same_model():
    """Null: numerical is a baseline relabelled (every variant reads the same windows the same way)."""
    st = PROFILES["quick"]
    same = _windows(0)
    result = _result()
    language_claims(result, _language_metrics(st, lambda label: same), st, "tiny-lm-long")
    assert result.claims and all(c.verdict == "inconclusive" for c in result.claims)


def test_language_claims_do_not_hold_under_window_noise_alone():
    """Null: variants differ only by independent per-window noise of no mean effect."""
    st = PROFILES["quick"]
    base = _windows(0)
    counter = iter(range(10_000))
    result = _result()
    language_claims(result, _language_metrics(st, lambda label: base + 0.01 * np.random.default_rng(
        next(counter)).standard_normal(len(base)) - 0.0), st, "tiny-lm-long")
    held = [c.id for c in result.claims if c.holds]
    assert len(held) <= 0.1 * len(result.claims)  # 95% intervals: a few may hold by chance, not most


def test_language_claims_hold_when_numerical_is_clearly_better():
    st = Setting(ratios=(0.5,), allocations=("alpha",))
    base = _windows(1)
    result = _result()
    language_claims(result, _language_metrics(st, lambda label: base - (0.3 if label == "numerical" else 0.0)), st, "lm")
    verdicts = {c.id: c.verdict for c in result.claims}
    assert verdicts["numerical_below_every_baseline_alpha_0.5"] == "holds"
    assert verdicts["compensation_lowers_numerical_alpha_0.5"] == "holds"
    assert verdicts["clipped_score_below_paper_score_0.5"] == "fails"


def test_ppl_claim_interval_is_the_paired_difference_of_perplexities():
    ours, ref = _windows(2), _windows(2, shift=0.1)
    result = _result()
    ppl_claim(result, "c", "s", ours, ref, "ref")
    c = result.claims[0]
    assert c.ours == pytest.approx(np.exp(ours.mean())) and c.reference == pytest.approx(np.exp(ref.mean()))
    assert c.interval[0] <= c.ours - c.reference <= c.interval[1] and c.verdict == "holds"
    swapped = _result()
    ppl_claim(swapped, "c", "s", ref, ours, "ref")
    assert swapped.claims[0].verdict == "fails"


def test_image_claims_do_not_hold_for_identical_models():
    st = Setting(ratios=(0.3,))
    bits = torch.tensor(_windows(3, n=50))
    table, per = {}, {}
    for alloc in ("alpha", "standardised"):
        for label, _, _ in variants(alloc):
            per[f"0.3|{alloc}|{label}"] = bits
            table.setdefault("0.3", {}).setdefault(alloc, {})[label] = float(bits.mean())
    result = _result()
    image_claims(result, {"image_bits_per_dim": table, "_bits": per}, st)
    assert result.claims and all(c.verdict == "inconclusive" for c in result.claims)


def test_throughput_claim_does_not_hold_for_the_dense_model_against_itself():
    g = np.random.default_rng(0)
    speed = 100 + 10 * g.standard_normal(8)
    result = _result()
    throughput_claim(result, "t", "s", np.stack([speed, speed], axis=1))
    assert result.claims[0].verdict != "holds"
    faster = _result()
    throughput_claim(faster, "t", "s", np.stack([speed * 1.5, speed], axis=1))
    assert faster.claims[0].verdict == "holds"


def test_linear_cost_claim_fails_for_the_quadratic_scheme():
    quadratic = [{"layers": n, "layer_runs": n * (n + 1) // 2 + n, "rerun_prefix_layer_runs": n * (n + 1) // 2 + n}
                 for n in (2, 16)]
    result = _result()
    linear_cost_claim(result, quadratic)
    assert result.claims[0].verdict == "fails"
    linear = [{**row, "layer_runs": 4 * row["layers"] - 1} for row in quadratic]
    ok = _result()
    linear_cost_claim(ok, linear)
    assert ok.claims[0].verdict == "holds"
