"""Linear-cost calibration: cached layer inputs give the statistics a full forward pass gives, and the
sequentially compensated prune equals one that re-runs the partly pruned model for every layer."""

from __future__ import annotations

import copy

import pytest
import torch

from tenfold.prune.calibration import LayerInputs, site_statistics
from tenfold.prune.compensate import compensated_weight
from tenfold.prune.pruner import PruneConfig, allocate, apply_plan, prune, score_model
from tenfold.prune.surgery import (
    blocks,
    decoder_layers,
    out_weight,
    set_out_weight,
    shrink_attention,
    shrink_mlp,
)


def _calib(n=6, t=12, seed=0):
    return torch.randint(0, 64, (n, t), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def _full_pass_stats(model, module, calib):
    """Reference: X^T X of `module`'s inputs from ordinary forward passes of the whole model (float64)."""
    grams = []
    h = module.register_forward_pre_hook(lambda m, a: grams.append(a[0].reshape(-1, a[0].shape[-1]).double()))
    model(input_ids=calib)
    h.remove()
    x = torch.cat(grams)
    return x.T @ x, x.sum(0), len(x)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gemma3", "phi3", "opt", "gpt2"])
@torch.no_grad()
def test_cached_inputs_give_the_statistics_of_full_forward_passes(family, tiny_model):
    """Gemma2/3 alternate sliding-window and global layers: each layer must get its own mask."""
    model = tiny_model(family, layers=3)
    if hasattr(model.config, "sliding_window"):
        model.config.sliding_window = 4  # shorter than the sequence, so the two layer types differ
    calib = _calib()
    bl = blocks(model)
    inputs = LayerInputs.capture(model, decoder_layers(model), calib, batch_size=4, device=torch.device("cpu"))
    for i, b in enumerate(bl):
        sa, sm = site_statistics(inputs, b, i)
        for stats, module in ((sa, b.attn_out), (sm, b.mlp_out)):
            gram, total, count = _full_pass_stats(model, module, calib)
            torch.testing.assert_close(stats.gram, gram, rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(stats.total, total, rtol=1e-9, atol=1e-9)
            assert stats.count == count
    assert inputs.layer_runs == len(bl)


@torch.no_grad()
def _prune_by_rerunning_the_model(model, plan, calib, cfg):
    """Reference (the quadratic scheme): for each layer, statistics from a full forward of the partly
    pruned model; attention compensated and removed first, then the MLP."""
    for i, b in enumerate(blocks(model)):
        gone = [u for u in range(b.n_units) if u not in plan.keep_units[i].tolist()]
        if gone:
            cols = torch.cat([b.unit_channels(u) for u in gone])
            gram = _full_pass_stats(model, b.attn_out, calib)[0]
            set_out_weight(b.attn_out, compensated_weight(gram, out_weight(b.attn_out), cols, cfg.compensation))
        shrink_attention(b, plan.keep_units[i])
        chans = torch.tensor([c for c in range(b.n_channels) if c not in plan.keep_channels[i].tolist()])
        if len(chans):
            gram = _full_pass_stats(model, b.mlp_out, calib)[0]
            set_out_weight(b.mlp_out, compensated_weight(gram, out_weight(b.mlp_out), chans, cfg.compensation))
        shrink_mlp(b, plan.keep_channels[i])


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_one_pass_compensation_equals_rerunning_the_partly_pruned_model(family, tiny_model):
    model = tiny_model(family, layers=3).double()
    calib = _calib(8, 12, seed=3)
    cfg = PruneConfig(batch_size=3)
    table = score_model(model, calib, ["numerical"], {"r": [0.4] * 3}, cfg)
    plan = allocate(blocks(model), table.scores[("numerical", "r")], [0.4] * 3, "standardised")
    ours, ref = copy.deepcopy(model), copy.deepcopy(model)
    apply_plan(ours, plan, calib, "ls", table.means, cfg)
    _prune_by_rerunning_the_model(ref, plan, calib, cfg)
    so, sr = ours.state_dict(), ref.state_dict()
    assert so.keys() == sr.keys()
    for k in so:
        torch.testing.assert_close(so[k], sr[k], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("layers", [1, 2, 5])
def test_a_compensated_prune_runs_each_layer_a_fixed_number_of_times(layers, tiny_model):
    """Dense scoring: one run per layer; compensation: attention statistics, MLP statistics and the
    outputs for the next layer (three runs, two of them stopped early), none after the last layer."""
    model = tiny_model("llama", layers=layers)
    prune(model, _calib(), 0.4, "numerical", config=PruneConfig(allocation="standardised"))
    assert model.config.tenfold_prune["info"]["layer_runs"] == layers + (3 * layers - 1)


def test_cost_row_reports_runs_time_and_memory_for_one_depth():
    from tenfold.prune.experiment import cost_row

    row = cost_row(3, samples=2, seq_len=8, width=32)
    # scoring 3 runs; the alpha allocation keeps every attention unit here, so per layer only the MLP
    # statistics run and the outputs for the next layer (none after the last): 3 + 2 x 3 - 1
    assert row["layer_runs"] == 3 + 2 * 3 - 1 and row["rerun_prefix_layer_runs"] == 9
    assert row["cpu_seconds"] >= 0 and row["memory_added_mb"] >= 0 and row["dense_weights_mb"] > 0
