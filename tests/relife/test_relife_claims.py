"""Every relife claim, fed a null (a baseline relabelled as RELIFE, an oracle against itself, an ablation
that changes nothing), must not hold; fed a clear effect, it must hold (so the claim can hold at all)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.core.results import Result
from tenfold.core.stats import paired_bootstrap
from tenfold.relife.experiment import ABLATION_NAMES, BASELINE_NAMES, add_claims, user_bootstrap

N, SEEDS = 300, 3
USERS = {"simulated": np.repeat(np.arange(N // 3), 3), "logged": np.arange(N)}  # 3 simulated test lists per user
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
    add_claims(result, sim, logged, SEEDS, control, users=USERS)
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
    from tenfold.relife.experiment import users_and_seeds_interval

    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.9, (2000, 1))
    ours = base + np.array([[0.02, -0.01, 0.0]])  # seeds disagree; every list agrees within a seed
    ref = base + rng.normal(0, 1e-4, (2000, 3))
    interval = users_and_seeds_interval(ours, ref, np.arange(2000) // 4)
    assert interval.lo < 0 < interval.hi  # the bootstrap alone would exclude 0
    assert "3 seeds" in interval.evidence and "paired t" in interval.evidence


def test_every_evidence_line_names_users_and_lists():
    result = Result(method="relife", kind="reproduce", paper={})
    sim, logged = _tables()
    add_claims(result, sim, logged, SEEDS, _control(sim, 0.0), users=USERS)
    for c in result.claims:
        n = "300 users (300 lists" if c.id.startswith("logged") else "100 users (300 lists"
        assert n in c.evidence, (c.id, c.evidence)


def _pair(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ours = rng.uniform(0.3, 0.9, n)
    return ours, ours - 0.02 + rng.normal(0, 0.1, n)


def test_user_bootstrap_with_one_list_per_user_is_the_list_bootstrap():
    ours, ref = _pair(200)
    by_user, by_list = user_bootstrap(ours, np.arange(200), ref), paired_bootstrap(ours, ref)
    # the same scipy draws of 200 units: the same interval, to round-off
    assert by_user.lo == pytest.approx(by_list.lo, abs=1e-12) and by_user.hi == pytest.approx(by_list.hi, abs=1e-12)
    assert by_user.estimate == pytest.approx(float(np.mean(ours - ref)), abs=1e-12)
    assert by_user.evidence == "paired bootstrap over 200 users (200 lists)"


def test_user_bootstrap_weighs_every_list_the_same():
    # hand-worked: user 0 has three lists of difference 1, user 1 one list of difference 0 -> 3/4, not 1/2
    users = np.array([7, 7, 7, 2, 5, 5])
    ours = np.array([1.0, 1.0, 1.0, 0.0, 0.5, 0.5])
    ref = np.array([0.0, 0.0, 0.0, 0.0, 0.5, 0.5])
    interval = user_bootstrap(ours, users, ref)
    assert interval.estimate == pytest.approx(3 / 6)
    assert interval.units == 3 and "3 users (6 lists)" in interval.evidence


def test_user_bootstrap_against_a_float64_loop_over_drawn_users():
    """An independent percentile cluster bootstrap (a loop that concatenates the drawn users' lists):
    the BCa endpoints agree with it to a tenth of the width (Monte Carlo and BCa vs percentile)."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 6, 150)  # unequal clusters
    users = np.repeat(np.arange(150), sizes)
    effect = rng.normal(0.02, 0.05, 150)[users]  # a per-user effect shared by the user's lists
    ours = rng.uniform(0.3, 0.9, users.size)
    ref = ours - effect - rng.normal(0, 0.02, users.size)
    lists = [np.flatnonzero(users == u) for u in range(150)]
    draws = np.random.default_rng(4)
    stats = []
    for _ in range(4000):
        rows = np.concatenate([lists[u] for u in draws.integers(0, 150, 150)])
        stats.append(np.mean(ours[rows].astype(np.float64) - ref[rows]))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    interval = user_bootstrap(ours, users, ref)
    assert abs(interval.lo - lo) < 0.1 * (hi - lo) and abs(interval.hi - hi) < 0.1 * (hi - lo), (interval, lo, hi)


@settings(max_examples=8, deadline=None)
@given(n=st.integers(30, 120), copies=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_user_bootstrap_is_at_least_as_wide_as_the_list_bootstrap_when_a_users_lists_agree(n, copies, seed):
    ours, ref = _pair(n, seed)
    users = np.repeat(np.arange(n), copies)
    same = user_bootstrap(np.repeat(ours, copies), users, np.repeat(ref, copies))  # identical lists per user
    once = user_bootstrap(ours, np.arange(n), ref)
    by_list = paired_bootstrap(np.repeat(ours, copies), np.repeat(ref, copies))
    # copies of a user's list add no information: the interval is that of one list per user ...
    assert same.lo == pytest.approx(once.lo, abs=1e-12) and same.hi == pytest.approx(once.hi, abs=1e-12)
    # ... while the list bootstrap counts them as independent and narrows by about sqrt(copies)
    assert same.hi - same.lo >= by_list.hi - by_list.lo


def test_user_bootstrap_one_sample_statistic_and_bad_owners():
    cols = np.random.default_rng(2).uniform(0, 1, (60, 2))
    users = np.arange(60) // 2
    ratio = user_bootstrap(cols, users, statistic=lambda m: m[0] / m[1])
    assert ratio.estimate == pytest.approx(cols[:, 0].mean() / cols[:, 1].mean())
    assert ratio.lo <= ratio.estimate <= ratio.hi and ratio.evidence.startswith("bootstrap over 30 users (60 lists")
    with pytest.raises(InputError, match="one user per test list"):
        user_bootstrap(cols[:, 0], users[:-1], cols[:, 1])
