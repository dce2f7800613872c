"""Float64 references, the task generator, the theory numbers and the bad-input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.looped import (
    LinearLoopedTransformer,
    Prompts,
    TaskConfig,
    embed,
    gd_construction,
    gd_predict,
    gd_weights,
    least_squares_predict,
    load_prompts,
    sample_prompts,
    task_covariance,
    theory_step_size,
)


def test_gd_converges_to_closed_form_least_squares():
    p = sample_prompts(8, TaskConfig(d=4, m=2, n=16, kappa=2.0, noise=0.3), seed=0)
    assert torch.allclose(gd_predict(p, 2000, theory_step_size(4, 16)), least_squares_predict(p), atol=1e-9)


def test_gd_step_matches_hand_worked_gradient():
    X = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]], dtype=torch.float64)  # n = 2, d = 2
    Y = torch.tensor([[[1.0], [4.0]]], dtype=torch.float64)
    p = Prompts(X, Y, torch.zeros(1, 2, dtype=torch.float64))
    # grad at W=0 is -(1/n) Y^T X = -[[0.5, 4.0]]: one step with eta = 0.5 gives W = [[0.25, 2.0]]
    assert torch.allclose(gd_weights(p, 1, 0.5), torch.tensor([[[0.25, 2.0]]], dtype=torch.float64))


def test_noiseless_least_squares_recovers_the_query_target():
    p = sample_prompts(16, TaskConfig(d=5, m=3, n=9), seed=3)
    assert torch.allclose(least_squares_predict(p), p.yq, atol=1e-10)


@pytest.mark.parametrize("kappa", [1.0, 7.0, 100.0])
def test_covariance_has_the_requested_condition_number(kappa):
    ev = torch.linalg.eigvalsh(task_covariance(TaskConfig(d=6, kappa=kappa)))
    assert math.isclose(float(ev[-1] / ev[0]), kappa, rel_tol=1e-9)
    assert math.isclose(float(ev[-1]), 1.0, rel_tol=1e-9)


def test_embedding_layout_and_seeded_determinism():
    task = TaskConfig(d=3, m=2, n=4)
    p, q = sample_prompts(2, task, seed=5), sample_prompts(2, task, seed=5)
    assert torch.equal(p.X, q.X) and torch.equal(p.Y, q.Y)
    Z = embed(p)
    assert Z.shape == (2, 5, 5)
    assert torch.equal(Z[:, :3, :4], p.X.transpose(1, 2)) and torch.equal(Z[:, 3:, 4], torch.zeros(2, 2, dtype=Z.dtype))


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(InputError, match="n .* >= 1"):
        TaskConfig(n=0)
    with pytest.raises(InputError, match="kappa"):
        TaskConfig(kappa=0.5)
    p = sample_prompts(2, TaskConfig(d=3, n=5), seed=0)
    with pytest.raises(InputError, match="T .* >= 1"):
        gd_construction(3, 1, 0.1).predict(p, 0)
    with pytest.raises(InputError, match="T .* >= 1"):
        gd_weights(p, 0, 0.1)
    with pytest.raises(InputError, match="d=3 but the weights expect d=4"):
        LinearLoopedTransformer(4, 1).double().predict(p, 1)
    bad = Prompts(p.X.clone(), p.Y, p.xq)
    bad.X[0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        gd_construction(3, 1, 0.1).predict(bad, 1)
    path = tmp_path / "p.npz"
    np.savez(path, X=np.zeros((2, 0, 3)), Y=np.zeros((2, 0, 1)), xq=np.zeros((2, 3)))
    with pytest.raises(InputError, match="n .* >= 1"):
        load_prompts(path)
    np.savez(path, X=np.zeros((2, 4, 3)))
    with pytest.raises(InputError, match="missing arrays"):
        load_prompts(path)
