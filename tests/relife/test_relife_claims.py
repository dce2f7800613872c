"""Every relife claim, fed a null (a baseline relabelled as RELIFE, an oracle against itself, an ablation
that changes nothing), must not hold; fed a clear effect, it must hold (so the claim can hold at all)."""

from __future__ import annotations

import numpy as np
import pytest

from tenfold.core.results import Result
from tenfold.relife.experiment import ABLATION_NAMES, BASELINE_NAMES, add_claims

N, SEEDS = 300, 3
SIM_MODELS = ("relife", *BASELINE_NAMES, *ABLATION_NAMES)


def _table(seed: int, names, shift: dict | None = None, columns: int = SEEDS) -> dict:
    rng = np.random.default_rng(seed)
    base = {m: rng.uniform(0.3, 0.9, (N, 1)) for m in ("ndcg@5", "map@5")}
    out = {}
    for i, name in enumerate(names):
        noise = np.random.default_rng([seed, i])
        out[name] = {m: np.clip(v + noise.normal(0, 0.05, (N, columns)) + (shift or {}).get(name, 0.0), 0, 1)
                     for m, v in base.items()}
    return out


def _tables(shift_sim=None, shift_logged=None, headroom=0.03):
    sim = _table(0, SIM_MODELS, shift_sim)
    sim.update(_table(0, ("oracle-beta", "oracle-mean", "oracle-sort"), {"oracle-beta": headroom}, columns=1))
    return sim, _table(1, ("relife", *BASELINE_NAMES), shift_logged)


def _verdicts(sim, logged, control=None) -> dict:
    result = Result(method="relife", kind="reproduce", paper={})
    add_claims(result, sim, logged, SEEDS, control)
    return {c.id: c.verdict for c in result.claims}


def _control(sim, gain: float) -> dict:
    """RELIFE and RELIFE without the extractor at beta = 0: the extractor gains `gain` there."""
    return {"relife": sim["relife"], "relife-no-cpe": {m: v - gain for m, v in sim["relife"].items()}}


def test_every_claim_holds_when_ours_is_clearly_better():
    ahead = {m: -0.05 for m in SIM_MODELS if m != "relife"}
    sim, logged = _tables(ahead, {m: -0.05 for m in BASELINE_NAMES})
    verdicts = _verdicts(sim, logged, _control(sim, 0.0))
    assert len(verdicts) == 8 + 8 + 1 + 4 + 1 + 1
    assert set(verdicts.values()) == {"holds"}, verdicts


def test_negative_control_a_baseline_relabelled_as_relife_never_holds():
    sim, logged = _tables()
    for table in (sim, logged):
        table["relife"] = table["prm"]
    verdicts = _verdicts(sim, logged)
    for regime in ("sim", "logged"):
        for metric in ("ndcg5", "map5"):
            assert verdicts[f"{regime}_{metric}_beats_prm"] != "holds"


def test_negative_control_equal_models_hold_no_comparison():
    sim, logged = _tables()
    for table in (sim, logged):
        for name in table:
            if not name.startswith("oracle"):
                table[name] = table["relife"]
    verdicts = _verdicts(sim, logged)
    comparisons = [k for k in verdicts if "beats" in k or "ablation" in k or "share" in k]
    assert comparisons and all(verdicts[k] != "holds" for k in comparisons), verdicts


def test_negative_control_an_oracle_against_itself_has_no_headroom():
    sim, logged = _tables(headroom=0.0)
    sim["oracle-beta"] = sim["oracle-mean"]
    assert _verdicts(sim, logged)["sim_oracle_headroom"] != "holds"


@pytest.mark.parametrize("worse", [0.0, 0.02])
def test_negative_control_an_ablation_that_is_no_worse_does_not_hold(worse):
    sim, logged = _tables({"relife-no-cpe": -worse} if worse else None)
    sim["relife-no-cpe"] = sim["relife"] if not worse else sim["relife-no-cpe"]
    verdicts = _verdicts(sim, logged)
    if worse:
        assert verdicts["sim_ablation_no_cpe"] == "holds" and verdicts["sim_cpe_headroom_share"] == "holds"
    else:
        assert verdicts["sim_ablation_no_cpe"] != "holds" and verdicts["sim_cpe_headroom_share"] != "holds"


def test_negative_control_an_extractor_gain_as_large_without_substitution_does_not_hold():
    sim, logged = _tables({"relife-no-cpe": -0.05})
    same = {m: sim[m] for m in ("relife", "relife-no-cpe")}  # the beta = 0 run gains exactly as much
    assert _verdicts(sim, logged, same)["sim_cpe_gain_needs_substitution"] != "holds"
    assert _verdicts(sim, logged, _control(sim, 0.0))["sim_cpe_gain_needs_substitution"] == "holds"


def test_the_interval_covers_the_training_noise_not_only_the_test_lists():
    from tenfold.relife.experiment import lists_and_seeds_interval

    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.9, (2000, 1))
    ours = base + np.array([[0.02, -0.01, 0.0]])  # seeds disagree; every list agrees within a seed
    ref = base + rng.normal(0, 1e-4, (2000, 3))
    interval = lists_and_seeds_interval(ours, ref)
    assert interval.lo < 0 < interval.hi  # the list bootstrap alone would exclude 0
    assert "3 seeds" in interval.evidence and "paired t" in interval.evidence
