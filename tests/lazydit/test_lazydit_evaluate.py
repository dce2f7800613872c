"""FID, precision/recall and their intervals against closed forms and independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.lazydit.evaluate import (
    FeatureReference,
    Judge,
    block_moments,
    frechet_distance,
    gaussian_stats,
    moments_stats,
    precision_recall_units,
)


@settings(max_examples=40, deadline=None)
@given(m1=st.floats(-5, 5), m2=st.floats(-5, 5), s1=st.floats(0.1, 4), s2=st.floats(0.1, 4))
def test_frechet_distance_of_1d_gaussians_equals_closed_form(m1, m2, s1, s2):
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2
    d = frechet_distance(np.array([m1]), np.array([[s1**2]]), np.array([m2]), np.array([[s2**2]]))
    assert d == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-9, abs=1e-9)


def test_frechet_distance_of_rotated_diagonal_gaussians_is_sum_of_per_axis_terms():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))  # a shared rotation keeps the covariances commuting
    v1, v2 = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 0.5, 0.5, 1.0])
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    d = frechet_distance(mu1, q @ np.diag(v1) @ q.T, mu2, q @ np.diag(v2) @ q.T)
    assert d == pytest.approx(((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum(), rel=1e-8)


def test_frechet_distance_of_identical_samples_is_zero_and_mismatched_shapes_error():
    mu, cov = gaussian_stats(torch.randn(200, 6, generator=torch.Generator().manual_seed(0)))
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-8
    with pytest.raises(InputError, match="mismatched"):
        frechet_distance(mu, cov, mu[:3], cov[:3, :3])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), dim=st.integers(2, 12))
def test_reference_fid_by_eigenvalues_equals_scipy_sqrtm(seed, dim):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(60, dim)) @ rng.normal(size=(dim, dim))
    fake = rng.normal(size=(50, dim)) @ rng.normal(size=(dim, dim)) + rng.normal(size=dim)
    ref = FeatureReference.from_features(real)
    mu, cov = gaussian_stats(fake)
    assert ref.fid(mu, cov) == pytest.approx(frechet_distance(mu, cov, *gaussian_stats(real)), rel=1e-7, abs=1e-7)


def test_block_moments_give_the_mean_and_covariance_of_any_resample_of_blocks():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(40, 5))
    blocks = np.tile(np.arange(8), 5)
    rows = block_moments(feats, blocks)
    pick = np.array([0, 3, 3, 7, 1, 1, 1, 5])  # a bootstrap resample of the 8 blocks
    mu, cov = moments_stats(rows[pick], 5)
    direct = np.concatenate([feats[blocks == b] for b in pick])
    assert np.allclose(mu, direct.mean(0)) and np.allclose(cov, np.cov(direct, rowvar=False))


def test_precision_and_recall_on_a_hand_worked_example():
    real = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    ref = FeatureReference.from_features(real + 0.0)  # k = 3: each real radius is sqrt(2), the diagonal
    same, _ = precision_recall_units(real.copy(), ref)
    assert same.tolist() == [1.0] * 4
    far = real + 10.0
    precision, recall = precision_recall_units(far, ref)
    assert precision.tolist() == [0.0] * 4 and recall.tolist() == [0.0] * 4
    half = np.vstack([real[:2] + 0.01, far[:2]])  # two samples on the real manifold, two far away
    precision, recall = precision_recall_units(half, ref)
    assert precision.tolist() == [1.0, 1.0, 0.0, 0.0] and recall.mean() > 0


def test_judge_rejects_generated_images_of_another_size(small_classifier_dir):
    from tenfold.zoo.digit_classifier import load_digit_classifier

    judge = Judge.from_images(load_digit_classifier(small_classifier_dir), torch.rand(50, 1, 8, 8))
    with pytest.raises(InputError, match="sample at the real images' size"):
        judge.score(torch.rand(10, 1, 16, 16), torch.zeros(10, dtype=torch.long))
    out = judge.score(torch.rand(10, 1, 8, 8), torch.zeros(10, dtype=torch.long))
    assert out["fid"] >= 0 and 0 <= out["class_acc"] <= 1 and 0 <= out["precision"] <= 1
