"""Negative controls: each claim's own computation fed a null must not say "holds"."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tenfold.core.results import Result
from tenfold.wgae.experiment import PAPER, add_claims

SEEDS = [0, 1, 2]


def _run(synthetic: bool, rng) -> dict:
    """Per-seed metrics shaped like run_dataset's, with our models clearly ahead."""
    per_seed = {}
    for s in SEEDS:
        row = {"vgae": {"auc": 0.80 + 0.01 * rng.random()}}
        for m in ("wgcae", "wgaae"):
            row[m] = {"auc": 0.90 + 0.01 * rng.random()}
            if synthetic:
                row[m] |= {"topic_match": 0.8 + 0.01 * rng.random(), "topic_match_lda": 0.6 + 0.01 * rng.random(),
                           "topic_match_trivial": 0.3 + 0.01 * rng.random()}
            else:
                row[m] |= {"npmi": 0.30 + 0.01 * rng.random(), "npmi_lda": 0.20 + 0.01 * rng.random()}
        per_seed[s] = row
    return {"per_seed": per_seed, "data": {"synthetic": synthetic}}


def _verdicts(run, name="d"):
    result = Result(method="wgae", kind="reproduce", paper=PAPER)
    add_claims(result, name, run, SEEDS)
    return {c.id: c.verdict for c in result.claims}


@pytest.mark.parametrize("synthetic", [True, False])
def test_claims_hold_when_ours_is_clearly_better(synthetic):
    assert set(_verdicts(_run(synthetic, np.random.default_rng(0))).values()) == {"holds"}


@pytest.mark.parametrize("synthetic", [True, False])
def test_no_claim_holds_when_ours_is_the_reference_relabelled(synthetic):
    run = _run(synthetic, np.random.default_rng(1))
    null = copy.deepcopy(run)
    for row in null["per_seed"].values():
        for m in ("wgcae", "wgaae"):
            row[m]["auc"] = row["vgae"]["auc"]  # VGAE relabelled as ours
            if synthetic:
                row[m]["topic_match"] = row[m]["topic_match_lda"]
                row[m]["topic_match_trivial"] = row[m]["topic_match"]  # ours no better than trivial topics
            else:
                row[m]["npmi"] = row[m]["npmi_lda"]  # LDA relabelled as ours
    verdicts = _verdicts(null)
    assert verdicts and "holds" not in verdicts.values(), verdicts


def test_shuffled_seed_pairing_of_a_noisy_null_does_not_hold():
    """Ours and the reference drawn from the same distribution (an untrained-model-like null)."""
    rng = np.random.default_rng(2)
    run = _run(False, rng)
    for row in run["per_seed"].values():
        for m in ("wgcae", "wgaae"):
            row[m]["auc"] = row["vgae"]["auc"] + 0.02 * rng.standard_normal()
            row[m]["npmi"] = row[m]["npmi_lda"] + 0.02 * rng.standard_normal()
    assert "holds" not in _verdicts(run).values()
