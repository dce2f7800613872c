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
    with pytest.raises(InputError, match=r"n \(examples per prompt\) must be an integer in 1\.\."):
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


@pytest.mark.parametrize("field, value", [("d", 10**13), ("m", 10**13), ("n", 10**13), ("kappa", 1e308),
                                          ("kappa", float("nan")), ("kappa_max", float("inf")), ("noise", 1e308)])
def test_sizes_and_scales_beyond_their_bounds_are_refused_before_any_allocation(field, value):
    with pytest.raises(InputError, match=field):
        TaskConfig(**{field: value})


def test_the_largest_kappa_allowed_still_has_a_cholesky_factor():
    from tenfold.looped.limits import MAX_KAPPA

    p = sample_prompts(3, TaskConfig(d=16, n=20, kappa=MAX_KAPPA), seed=0)
    assert bool(torch.isfinite(p.X).all())
    p = sample_prompts(3, TaskConfig(d=16, n=20, kappa_max=MAX_KAPPA), seed=0)
    assert bool(torch.isfinite(p.X).all())


def test_a_batch_too_large_for_memory_is_refused_with_what_to_do():
    with pytest.raises(InputError, match="GB .* use fewer prompts"):
        sample_prompts(100_000, TaskConfig(d=512, n=100), seed=0)


@pytest.mark.parametrize("content, what", [(b"", "empty"), (b"\x00\xff\xfe\x93NUMPY garbage \x00" * 64, "not readable"),
                                           (b'{"X": [[1, 2', "not readable")])
def test_an_empty_corrupted_or_truncated_prompt_file_is_one_input_error(tmp_path, content, what):
    path = tmp_path / "prompts.npz"
    path.write_bytes(content)
    with pytest.raises(InputError, match=what):
        load_prompts(path)


def test_a_single_array_npy_file_is_refused_as_not_named_arrays(tmp_path):
    path = tmp_path / "prompts.npy"
    np.save(path, np.zeros((2, 3)))
    with pytest.raises(InputError, match="one array, not named arrays"):
        load_prompts(path)
