"""Every reproduce claim fed a null (the reference relabelled as ours, shuffled labels) must not hold;
fed a clearly better model it must; and `reproduce --profile smoke` runs end to end."""

from __future__ import annotations

import numpy as np
import pytest

from tenfold.core.results import Result
from tenfold.ind.experiment import PAPER, add_claims
from tenfold.ind.metrics import weighted_auc_map

AUTHORS = 40


def _labels():
    return {f"a{i}": {f"a{i}p{j}": int(j >= 3) for j in range(12)} for i in range(AUTHORS)}


def _run(noise: float, seed: int, labels=None):
    """An IndScore of scores = label + noise (noise large: near chance)."""
    labels = labels or _labels()
    rng = np.random.default_rng(seed)
    scores = {a: {p: y + noise * rng.standard_normal() for p, y in lab.items()} for a, lab in labels.items()}
    return weighted_auc_map(labels, scores)


def _runs(**override):
    runs = {"mind": [_run(0.3, 1)], "gccad": [_run(2.0, 2)], "mind-text": [_run(1.0, 3)], "lr": [_run(3.0, 4)],
            "oracle": [_run(0.01, 5)]}
    runs.update(override)
    return runs


def _verdicts(runs) -> dict[str, str]:
    result = Result(method="ind", kind="reproduce", paper=PAPER)
    add_claims(result, runs)
    return {c.id: c.verdict for c in result.claims}


def test_every_claim_holds_for_a_clearly_better_model():
    assert set(_verdicts(_runs()).values()) == {"holds"}


@pytest.mark.parametrize("claim,reference", [("mind_beats_gccad", "gccad"), ("graph_modality_helps", "mind-text"),
                                             ("mind_beats_lr", "lr")])
def test_a_reference_relabelled_as_mind_does_not_hold(claim, reference):
    runs = _runs()
    runs["mind"] = runs[reference]
    assert _verdicts(runs)[claim] == "inconclusive"


def test_a_model_at_chance_does_not_beat_the_references():
    verdicts = _verdicts(_runs(mind=[_run(50.0, 9)]))
    assert all(verdicts[c] != "holds" for c in ("mind_beats_gccad", "graph_modality_helps", "mind_beats_lr"))


def test_an_lm_reading_nothing_is_not_above_chance():
    labels = _labels()
    rng = np.random.default_rng(3)
    blind = weighted_auc_map(labels, {a: {p: float(rng.random()) for p in lab} for a, lab in labels.items()})
    assert _verdicts(_runs(**{"mind-text": [blind]}))["mind_text_above_chance"] != "holds"


def test_an_oracle_fed_shuffled_labels_does_not_pass_the_threshold():
    labels = _labels()
    rng = np.random.default_rng(0)
    shuffled = {a: dict(zip(lab, rng.permutation(list(lab.values())).tolist(), strict=True)) for a, lab in labels.items()}
    oracle = weighted_auc_map(labels, {a: {p: float(y) for p, y in lab.items()} for a, lab in shuffled.items()})
    assert _verdicts(_runs(oracle=[oracle]))["oracle_routes_graph"] == "fails"


def test_claims_with_several_seeds_pair_them_and_say_so():
    runs = {k: v * 3 for k, v in _runs().items()}
    runs["oracle"] = runs["oracle"][:1]
    result = Result(method="ind", kind="reproduce", paper=PAPER)
    add_claims(result, runs)
    assert "x 3 seeds" in result.claims[0].evidence and "held-out author" in result.claims[0].evidence


def test_reproduce_smoke_profile_writes_metrics_claims_and_plot(tmp_path, long_lm_dir):
    from tenfold.ind.experiment import reproduce

    res = reproduce("smoke", 0, tmp_path, lm=str(long_lm_dir))
    assert {"lr", "gcn", "gccad", "mind-title", "mind-text", "mind", "oracle"} <= set(res.metrics)
    assert all(0.0 <= res.metrics[k]["wauc"] <= 1.0 for k in ("lr", "gcn", "gccad", "mind", "oracle"))
    assert {c.id for c in res.claims} == {"mind_beats_gccad", "graph_modality_helps", "mind_beats_lr",
                                          "mind_text_above_chance", "oracle_routes_graph"}
    assert all(c.interval is not None and c.evidence for c in res.claims)
    assert res.metrics["leakage"] == {"shared_authors": 0, "shared_papers": 0}
    assert res.metrics["prompts"]["train"]["max"] <= res.config["lm"]["training_context"]
    assert any("synthetic" in n for n in res.notes)
    assert (tmp_path / "ind_scores.png").is_file() and res.artifacts == ["ind_scores.png"]
    res.write(tmp_path)  # the record passes the /2 contract


def test_bench_smoke_reports_throughput_and_prompt_lengths(tmp_path, long_lm_dir):
    from tenfold.ind.experiment import bench

    res = bench("smoke", 0, tmp_path, lm=str(long_lm_dir))
    assert res.metrics["mind"]["papers_per_s"] > 0 and res.metrics["gccad"]["papers_per_s"] > 0
    assert res.metrics["prompts"]["max"] <= res.metrics["prompts"]["max_length"]
    assert res.config["device"] == "cpu" and res.claims == []
