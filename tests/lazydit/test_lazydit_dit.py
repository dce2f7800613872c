"""LazyDiT hooks on a diffusers DiT: exactness with gates closed, exact reuse with gates open,
per-sample skipping, detaching, MACs, and the bad-input errors."""

from __future__ import annotations

import pytest
import torch

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.lazydit.dit import LazyController, LazyDiTPipeline, dit_blocks, profile_macs
from tenfold.lazydit.gates import LazyGates


def reference_ddim(model, scheduler, labels, steps, seed):
    """Plain DDIM on the bare model (no hooks), written out independently of the pipeline."""
    cfg = model.config
    x = torch.randn((len(labels), cfg.in_channels, cfg.sample_size, cfg.sample_size),
                    generator=torch.Generator().manual_seed(seed))
    scheduler.set_timesteps(steps)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = model(x, timestep=t.expand(len(x)), class_labels=labels).sample
            x = scheduler.step(eps, t, x, eta=0.0).prev_sample
    return (x / 2 + 0.5).clamp(0, 1)


def gates_for(model, steps):
    blocks = dit_blocks(model)
    return LazyGates(steps, len(blocks), blocks[0].attn1.to_q.in_features)


def sample(model, scheduler, labels, steps, seed, **kwargs):
    return LazyDiTPipeline(model, scheduler)(labels, steps, guidance_scale=1.0, output_type="pt",
                                             generator=torch.Generator().manual_seed(seed), **kwargs)


def test_gates_closed_reproduce_the_base_model_bit_for_bit(small_dit):
    model, scheduler = small_dit
    labels = torch.arange(6)
    ref = reference_ddim(model, scheduler, labels, 6, seed=3)
    gates = gates_for(model, 6)
    with torch.no_grad():
        gates.attn.normal_()  # trained-looking gates, overridden by closing them
    closed = sample(model, scheduler, labels, 6, 3, gates=gates, force={"attn": "compute", "mlp": "compute"})
    assert torch.equal(closed.images, ref) and closed.stats.skip_fraction == 0.0
    untrained = sample(model, scheduler, labels, 6, 3, gates=gates_for(model, 6))
    assert torch.equal(untrained.images, ref)  # zero-initialised gates: s = 0.5 >= threshold, nothing skipped
    assert torch.equal(sample(model, scheduler, labels, 6, 3).images, ref)  # no gates: no hooks at all


def capture_outputs(model):
    seen = []
    handles = [b.attn1.register_forward_hook(lambda m, a, o, i=i: seen.append(("attn", i, o.clone())))
               for i, b in enumerate(model.transformer_blocks)]
    handles += [b.ff.register_forward_hook(lambda m, a, o, i=i: seen.append(("mlp", i, o.clone())))
                for i, b in enumerate(model.transformer_blocks)]
    return seen, handles


def test_gates_forced_open_reuse_exactly_the_previous_steps_module_outputs(small_dit):
    model, _ = small_dit
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 3])
    ctl = LazyController(model, gates_for(model, 4))
    seen, handles = capture_outputs(model)
    with torch.no_grad():
        ctl.mode, ctl.step = "hard", 0
        model(x, timestep=torch.full((3,), 900), class_labels=y)
        first = {(k, i): o for k, i, o in seen}
        seen.clear()
        ctl.step, ctl.force = 1, {"attn": "reuse", "mlp": "reuse"}
        model(torch.randn(3, 1, 8, 8), timestep=torch.full((3,), 700), class_labels=y)
    for h in handles:
        h.remove()
    ctl.detach()
    assert len(seen) == 2 * len(model.transformer_blocks)
    for kind, i, out in seen:
        assert torch.equal(out, first[(kind, i)])
    assert ctl.stats.skipped == {"attn": 3 * len(model.transformer_blocks), "mlp": 3 * len(model.transformer_blocks)}


class FirstSampleLazy:
    """A policy that wants to skip sample 0 and compute sample 1, at every module."""

    num_steps, num_layers, gate_cost = 2, 2, True

    def is_active(self, step):
        return True

    def keep_probability(self, kind, step, layer, z):
        return torch.tensor([0.0, 1.0])


def test_skipping_is_decided_per_sample(small_dit):
    model, _ = small_dit
    ctl = LazyController(model, FirstSampleLazy())
    y, t0, t1 = torch.tensor([0, 1]), torch.full((2,), 900), torch.full((2,), 700)
    x1 = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ctl.step = 0
        model(torch.randn(2, 1, 8, 8), timestep=t0, class_labels=y)
        cached = {k: v.clone() for k, v in ctl.cache.items()}
        ctl.step = 1
        seen, handles = capture_outputs(model)
        model(x1, timestep=t1, class_labels=y)
        for h in handles:
            h.remove()
    ctl.detach()
    first_attn = next(o for k, i, o in seen if (k, i) == ("attn", 0))
    assert torch.equal(first_attn[0], cached[(0, "attn")][0])  # sample 0: the cached output
    assert not torch.equal(first_attn[1], cached[(0, "attn")][1])  # sample 1: computed afresh
    assert ctl.stats.skipped == {"attn": 2, "mlp": 2} and ctl.stats.calls == {"attn": 8, "mlp": 8}


def test_detach_restores_the_plain_model(small_dit):
    model, _ = small_dit
    x, t, y = torch.randn(2, 1, 8, 8), torch.full((2,), 500), torch.tensor([4, 5])
    with torch.no_grad():
        before = model(x, timestep=t, class_labels=y).sample
        ctl = LazyController(model, gates_for(model, 2))
        ctl.detach()
        after = model(x, timestep=t, class_labels=y).sample
    assert torch.equal(before, after)
    assert not any(b.attn1._diffusers_hook.hooks for b in model.transformer_blocks)


def test_profile_macs_matches_analytic_counts(small_dit):
    model, _ = small_dit
    macs = profile_macs(model)
    tokens, dim = (8 // 2) ** 2, model.transformer_blocks[0].attn1.to_q.in_features
    inner = model.transformer_blocks[0].ff.net[-1].in_features
    assert macs.attn == 4 * tokens * dim * dim + 2 * tokens * tokens * dim  # q, k, v, out + QK^T and PV
    assert macs.mlp == 2 * tokens * dim * inner
    assert macs.full > macs.num_layers * (macs.attn + macs.mlp) and macs.gate == tokens * dim


class NotADiT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList([torch.nn.Module()])
        self.transformer_blocks[0].attn1 = torch.nn.Identity()


def test_models_whose_blocks_do_not_match_are_rejected():
    with pytest.raises(UnsupportedError, match="no `ff` module"):
        dit_blocks(NotADiT())
    with pytest.raises(UnsupportedError, match="transformer_blocks"):
        dit_blocks(torch.nn.Linear(2, 2))


def test_non_ddim_schedulers_and_mismatched_gates_are_rejected(small_dit):
    from diffusers import DDPMScheduler

    model, scheduler = small_dit
    with pytest.raises(UnsupportedError, match="DDIM"):
        LazyDiTPipeline(model, DDPMScheduler())
    pipe = LazyDiTPipeline(model, scheduler)
    with pytest.raises(InputError, match="trained for 4 DDIM steps"):
        pipe(torch.arange(2), 5, gates=gates_for(model, 4))
    with pytest.raises(InputError, match="blocks"):
        LazyController(model, LazyGates(4, 7, 16))
    with pytest.raises(InputError, match="class labels"):
        pipe(torch.tensor([99]), 4, guidance_scale=1.0)
    with pytest.raises(InputError, match="threshold"):
        pipe(torch.arange(2), 4, gates=gates_for(model, 4), threshold=1.0)


def test_inactive_steps_always_compute_and_cost_no_gate(small_dit):
    model, scheduler = small_dit
    blocks = dit_blocks(model)
    gates = LazyGates(4, len(blocks), blocks[0].attn1.to_q.in_features, active=[3])
    out = sample(model, scheduler, torch.arange(3), 4, 0, gates=gates, threshold=0.9)  # s = 0.5 < 0.9: skip if gated
    n = len(blocks) * 3  # modules x samples at the one gated step
    assert out.stats.skipped == {"attn": n, "mlp": n} and out.stats.gate_calls == 2 * n
