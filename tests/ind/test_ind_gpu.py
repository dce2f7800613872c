"""MIND on CUDA under bf16 mixed precision (skipped without a GPU; `make gpu-check` runs it)."""

from __future__ import annotations

import math

import pytest

from tenfold.data.whoiswho import GeneratorConfig, generate_ind, load_ind


@pytest.mark.gpu
def test_a_detector_trains_and_scores_on_cuda_in_bf16(tmp_path, long_lm_dir, monkeypatch):
    from tenfold.ind.experiment import PROFILES, detector_config
    from tenfold.ind.metrics import weighted_auc_map
    from tenfold.ind.pipeline import fit_detector

    monkeypatch.setenv("TENFOLD_DEVICE", "cuda")
    monkeypatch.setenv("TENFOLD_MIXED_PRECISION", "bf16")
    generate_ind(tmp_path / "data", 0, GeneratorConfig(n_train=6, n_valid=4, min_papers=8, max_papers=10))
    data = load_ind(tmp_path / "data")
    det = fit_detector(data, tmp_path / "det", detector_config(PROFILES["smoke"], str(long_lm_dir)), seed=0)
    assert next(det.mind.lm.parameters()).device.type == "cuda"
    assert all(math.isfinite(v) for k in (1, 2, 3) for v in det.history[f"stage{k}"])
    valid = data.split("valid")
    scores = det.score(data, valid, 3)
    assert all(0.0 <= s <= 1.0 for v in scores.values() for s in v.values())
    weighted_auc_map({a.aid: a.labels for a in valid.values()}, scores)
