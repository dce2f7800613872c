"""Lazy learning layers: score, soft mix, penalty, threshold range, save/load."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.lazydit.gates import (
    LazyConfig,
    LazyGates,
    check_threshold,
    laziness_penalty,
    lazy_mix,
    lazy_score,
    lazy_steps,
)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4), tokens=st.integers(1, 9), dim=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_lazy_score_matches_float64_double_sum(batch, tokens, dim, seed):
    g = torch.Generator().manual_seed(seed)
    z, w = torch.randn(batch, tokens, dim, generator=g), torch.randn(dim, generator=g) * 0.1
    ref = [1 / (1 + math.exp(-sum(float(w[d]) * float(z[b, n, d]) for n in range(tokens) for d in range(dim))))
           for b in range(batch)]
    assert torch.allclose(lazy_score(w, z).double(), torch.tensor(ref, dtype=torch.float64), atol=1e-5)


def test_zero_initialised_gates_give_exactly_one_half_so_nothing_is_skipped_at_threshold_one_half():
    gates = LazyGates(num_steps=3, num_layers=2, dim=5)
    s = gates.keep_probability("attn", 1, 1, torch.randn(4, 7, 5))
    assert torch.equal(s, torch.full((4,), 0.5)) and bool((s >= 0.5).all())


def test_lazy_mix_interpolates_between_computed_and_cached_per_sample():
    computed, cached = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    s = torch.tensor([1.0, 0.0, 0.25])
    out = lazy_mix(s, computed, cached)
    assert torch.equal(out[0], computed[0]) and torch.equal(out[1], cached[1])
    assert torch.allclose(out[2], 0.25 * computed[2] + 0.75 * cached[2])


def test_laziness_penalty_is_rho_weighted_sum_over_layers_mean_over_batch_hand_example():
    s_attn = torch.tensor([[1.0, 0.0], [0.5, 0.5]])  # (layers=2, batch=2): per-sample sums 1.5, 0.5 -> mean 1.0
    s_mlp = torch.tensor([[0.2, 0.4], [0.2, 0.4]])  # sums 0.4, 0.8 -> mean 0.6
    assert laziness_penalty(s_attn, s_mlp, 0.1, 2.0).item() == pytest.approx(0.1 * 1.0 + 2.0 * 0.6)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), "0.5"])
def test_threshold_outside_open_unit_interval_is_rejected(bad):
    with pytest.raises(InputError, match="threshold"):
        check_threshold(bad)
    with pytest.raises(InputError):
        LazyConfig(threshold=bad)


def test_gates_round_trip_through_safetensors_and_reject_foreign_files(tmp_path):
    from tenfold.core.io import save_tensors

    gates = LazyGates(4, 3, 6)
    with torch.no_grad():
        gates.attn.normal_()
        gates.mlp.normal_()
    back = LazyGates.load(gates.save(tmp_path / "g.safetensors"))
    assert (back.num_steps, back.num_layers, back.dim) == (4, 3, 6)
    assert torch.equal(back.attn, gates.attn) and torch.equal(back.mlp, gates.mlp)
    save_tensors(tmp_path / "other.safetensors", {"weight": torch.zeros(2)})
    with pytest.raises(InputError, match="not a LazyDiT gates file"):
        LazyGates.load(tmp_path / "other.safetensors")


@pytest.mark.parametrize("steps", [20, 9, 2])
def test_alternate_pattern_is_the_authors_odd_respaced_draw(steps):
    # lazy_learning_imagenet.py: t = randint(0, T // 2) * 2 + 1 in the respaced index (T - 1 = the noisiest),
    # the lazy step being t - 1; sampling step i has respaced index T - 1 - i
    lazy_respaced = {2 * k + 1 - 1 for k in range(steps // 2)}
    assert set(lazy_steps(steps, "alternate")) == {steps - 1 - t for t in lazy_respaced}
    assert lazy_steps(steps, "every") == list(range(1, steps))
    alternate = lazy_steps(steps, "alternate")
    assert all(b - a == 2 for a, b in zip(alternate, alternate[1:], strict=False))  # never two lazy steps in a row


def test_inactive_steps_keep_every_module_and_activity_survives_saving(tmp_path):
    gates = LazyGates(4, 2, 3, active=[1, 3])
    with torch.no_grad():
        gates.attn.fill_(-1.0)
    z = torch.ones(5, 2, 3)
    assert torch.equal(gates.keep_probability("attn", 2, 0, z), torch.ones(5))
    assert gates.keep_probability("attn", 3, 0, z).max() < 0.5
    back = LazyGates.load(gates.save(tmp_path / "g.safetensors"))
    assert back.active.tolist() == [False, True, False, True] and torch.equal(back.attn, gates.attn)
    with pytest.raises(InputError, match="step 0"):
        LazyGates(4, 2, 3, active=[0])


def test_gates_files_without_an_activity_mask_load_with_every_step_active(tmp_path):
    from tenfold.core.io import save_tensors

    save_tensors(tmp_path / "old.safetensors", {"attn": torch.ones(3, 2, 4), "mlp": torch.zeros(3, 2, 4)})
    old = LazyGates.load(tmp_path / "old.safetensors")
    assert old.active.tolist() == [False, True, True] and torch.equal(old.attn, torch.ones(3, 2, 4))


def test_paper_defaults_and_config_errors():
    cfg = LazyConfig()
    assert (cfg.lr, cfg.rho_attn, cfg.train_iters, cfg.batch_size) == (1e-4, 1e-7, 500, 64)  # run script
    assert (cfg.objective, cfg.pattern, cfg.window, cfg.label_dropout) == ("one-step", "alternate", 1, 0.1)
    with pytest.raises(InputError, match="window"):
        LazyConfig(window=3)
    with pytest.raises(InputError, match="pattern"):
        LazyConfig(pattern="odd")
    with pytest.raises(InputError, match="objective"):
        LazyConfig(objective="x0")
