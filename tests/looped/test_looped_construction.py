"""The construction: one loop of the LSA layer with weights set by formula is one GD step, exactly."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.looped import (
    LinearLoopedTransformer,
    TaskConfig,
    embed,
    gd_construction,
    gd_predict,
    gd_rate,
    gd_weights,
    implicit_weights,
    iteration_rate,
    learned_preconditioner,
    lsa,
    sample_prompts,
    theory_step_size,
)

shapes = st.tuples(st.integers(1, 7), st.integers(1, 3), st.integers(1, 24), st.integers(1, 25),
                   st.floats(1.0, 30.0), st.integers(0, 10_000))


@settings(max_examples=25, deadline=None)
@given(shapes)
def test_construction_equals_T_step_gd_to_roundoff_over_random_shapes(shape):
    d, m, n, T, kappa, seed = shape
    p = sample_prompts(6, TaskConfig(d=d, m=m, n=n, kappa=kappa, noise=0.1, cov_seed=seed), seed=seed)
    eta = theory_step_size(d, n)
    with torch.no_grad():
        looped = gd_construction(d, m, eta).predict(p, T)
    ref = gd_predict(p, T, eta)
    scale = max(1.0, float(ref.abs().max()))
    assert float((looped - ref).abs().max()) <= 1e-8 * scale


@settings(max_examples=15, deadline=None)
@given(shapes)
def test_preconditioned_construction_equals_preconditioned_gd(shape):
    d, m, n, T, kappa, seed = shape
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    Gamma = A @ A.T / d + torch.eye(d, dtype=torch.float64)  # symmetric positive definite
    p = sample_prompts(4, TaskConfig(d=d, m=m, n=n, kappa=kappa, cov_seed=seed), seed=seed)
    eta = 0.5 * theory_step_size(d, n) / float(torch.linalg.eigvalsh(Gamma)[-1])
    with torch.no_grad():
        looped = gd_construction(d, m, eta, Gamma).predict(p, min(T, 10))
    assert torch.allclose(looped, gd_predict(p, min(T, 10), eta, Gamma), atol=1e-10, rtol=0)


def test_lsa_layer_matches_explicit_sum_over_tokens():
    g = torch.Generator().manual_seed(0)
    D, n = 4, 5
    Z = torch.randn(2, D, n + 1, generator=g, dtype=torch.float64)
    P = torch.randn(D, D, generator=g, dtype=torch.float64)
    Q = torch.randn(D, D, generator=g, dtype=torch.float64)
    out = lsa(Z, P, Q, n)
    for b in range(2):
        for i in range(n + 1):  # column i attends linearly to the n example columns only
            acc = sum(P @ Z[b, :, j] * float(Z[b, :, j] @ Q @ Z[b, :, i]) for j in range(n))
            assert torch.allclose(out[b, :, i], Z[b, :, i] + acc / n, atol=1e-12)


def test_implicit_weights_read_out_the_gd_iterate():
    task = TaskConfig(d=4, m=2, n=12, kappa=3.0)
    p = sample_prompts(5, task, seed=1)
    eta = theory_step_size(4, 12)
    with torch.no_grad():
        W = implicit_weights(gd_construction(4, 2, eta), p, 7)
    assert torch.allclose(W, gd_weights(p, 7, eta), atol=1e-12)


def test_structured_model_only_writes_y_rows():
    p = sample_prompts(3, TaskConfig(d=3, m=1, n=6), seed=0)
    model = LinearLoopedTransformer(3, 1).double()
    Z0 = embed(p)
    with torch.no_grad():
        Z = model(Z0, 4)
    assert torch.equal(Z[:, :3], Z0[:, :3])  # the x-rows are never changed


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 12), st.integers(1, 6), st.integers(0, 999))
def test_structured_loop_equals_the_generic_lsa_layer(d, m, n, T, seed):
    model = LinearLoopedTransformer(d, m, seed=seed).double()
    with torch.no_grad():
        model.P.normal_(generator=torch.Generator().manual_seed(seed))
        model.Q.normal_(generator=torch.Generator().manual_seed(seed + 1))
    P, Q = model.weights()
    Z = embed(sample_prompts(3, TaskConfig(d=d, m=m, n=n), seed=seed))
    ref = Z
    for _ in range(T):
        ref = lsa(ref, P, Q, n)
    with torch.no_grad():
        assert torch.allclose(model(Z, T), ref, atol=1e-9 * max(1.0, float(ref.abs().max())))


def test_trajectory_holds_every_loops_prediction():
    p = sample_prompts(4, TaskConfig(d=3, n=8), seed=2)
    model = gd_construction(3, 1, 0.3)
    with torch.no_grad():
        traj = model.trajectory(p, 6)
        assert all(torch.allclose(traj[:, t - 1], model.predict(p, t), atol=1e-14) for t in (1, 3, 6))


def test_learned_preconditioner_reads_the_construction_back_and_predicts_its_rate():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=g, dtype=torch.float64)
    Gamma = A @ A.T / 4 + torch.eye(4, dtype=torch.float64)
    model = gd_construction(4, 1, 0.1, Gamma)
    assert torch.allclose(learned_preconditioner(model), 0.1 * Gamma)
    p = sample_prompts(5, TaskConfig(d=4, n=16), seed=1)
    plain = gd_construction(4, 1, 0.2)
    assert torch.allclose(iteration_rate(p, learned_preconditioner(plain)), gd_rate(p, 0.2), atol=1e-12)
