"""The whole reproduce pipeline on the seconds-long smoke profile (generated proteins, tiny models)."""

from __future__ import annotations

import json

import pytest

from tenfold.core.errors import InputError
from tenfold.plmscale.experiment import reproduce


def test_smoke_reproduce_writes_required_metrics_claims_and_plots(tmp_path):
    result = reproduce("smoke", 0, tmp_path)
    for obj in ("clm", "mlm"):
        assert {"a", "b", "a_ci", "b_ci", "heldout_rel_err"} <= set(result.metrics[obj])
        assert all("interior" in g for g in result.metrics[obj]["budgets"])
    assert set(result.metrics["paper"]) == {"clm", "mlm"}
    assert {"coverage", "coverage_all", "first_dataset"} <= set(result.metrics["recovery"])
    assert {"runs", "positive_fraction", "law"} <= set(result.metrics["transfer"])
    ids = {c.id for c in result.claims}
    assert {"recovers_known_exponent_a", "recovers_known_coefficients", "mlm_a_exceeds_clm_a",
            "clm_init_saves_mlm_tokens"} <= ids
    for name in result.artifacts:
        assert (tmp_path / name).is_file(), name
    json.dumps(result.to_dict())  # serialisable as result.json
    assert any("synthetic data" in n for n in result.notes)


def test_unknown_profile_is_refused(tmp_path):
    with pytest.raises(InputError, match="profiles"):
        reproduce("tiny", 0, tmp_path)
