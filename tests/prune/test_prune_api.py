"""The public `prune` call, its bad-input errors, the CLI verbs and a tiny reproduce."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from typer.testing import CliRunner

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.prune.evaluate import count_parameters
from tenfold.prune.pruner import METHODS, PruneConfig, prune


def _calib(n=8, t=16, seed=0):
    return torch.randint(0, 64, (n, t), generator=torch.Generator().manual_seed(seed))


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_ratio_outside_unit_interval_raises_before_any_change(ratio, tiny_model):
    model = tiny_model("llama")
    ref = copy.deepcopy(model)
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        prune(model, _calib(), ratio)
    assert _same(model, ref)


def test_ratio_that_removes_every_head_of_a_layer_raises(tiny_model):
    model = tiny_model("llama")  # 2 key/value groups per layer
    ref = copy.deepcopy(model)
    with pytest.raises(InputError, match="every attention head"):
        prune(model, _calib(), 0.8, config=PruneConfig(scope="layer"))
    assert _same(model, ref)


def test_unsupported_architecture_lists_the_supported_ones():
    from transformers import BertConfig, BertForMaskedLM

    model = BertForMaskedLM(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=37))
    with pytest.raises(UnsupportedError, match="LlamaForCausalLM.*GPT2LMHeadModel"):
        prune(model, _calib(), 0.3)


@pytest.mark.parametrize("calib", [torch.zeros(8, 16), torch.zeros(16, dtype=torch.long),
                                   torch.full((2, 8), 999, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long)])
def test_bad_calibration_raises(calib, tiny_model):
    with pytest.raises(InputError):
        prune(tiny_model("llama"), calib, 0.3)


def test_model_folder_without_weights_is_a_clear_error(tmp_path, tiny_model):
    from tenfold.prune.surgery import load_pruned

    tiny_model("llama").config.save_pretrained(tmp_path)
    with pytest.raises(InputError, match="no model weights"):
        load_pruned(tmp_path)


def test_calibration_text_shorter_than_the_context_is_a_clear_error():
    from tenfold.prune.experiment import calibration_windows

    with pytest.raises(InputError, match="fewer than"):
        calibration_windows(torch.arange(100), 4, 32, seed=0)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_removes_about_the_requested_share_of_weights(method, tiny_model):
    model = tiny_model("llama")
    blocks_params = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n and "norm" not in n)
    before = count_parameters(model)
    prune(model, _calib(), 0.3, method=method)
    removed = before - count_parameters(model)
    assert 0.2 * blocks_params <= removed <= 0.4 * blocks_params


@torch.no_grad()
def test_compensation_lowers_the_layer_output_error(tiny_lm):
    """Same mask, with vs without compensation: the compensated model's logits stay closer to dense."""
    model = copy.deepcopy(tiny_lm[0]).eval()
    calib = torch.randint(0, model.config.vocab_size, (8, 32), generator=torch.Generator().manual_seed(0))
    dense = model(input_ids=calib).logits
    errs = {}
    for comp in (True, False):
        pruned = prune(copy.deepcopy(model), calib, 0.3, compensate=comp, config=PruneConfig(scope="layer"))
        errs[comp] = (pruned(input_ids=calib).logits - dense).pow(2).mean().item()
    assert errs[True] < errs[False]


def test_cli_run_then_eval_on_a_model_by_path(tiny_lm_dir, tmp_path):
    from tenfold.prune.cli import app

    out = tmp_path / "pruned"
    runner = CliRunner()
    res = runner.invoke(app, ["run", "--model", str(tiny_lm_dir), "--ratio", "0.3", "--method", "numerical",
                              "--calib", "4", "--seq-len", "32", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["params_after"] < report["params_before"]
    res = runner.invoke(app, ["eval", "--model", str(out), "--seq-len", "32", "--windows", "2", "--new-tokens", "4",
                              "--out", str(tmp_path / "eval.json")])
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["perplexity"] > 1 and ev["generation_tokens_per_second"] > 0


def test_cli_refuses_to_overwrite_the_input_model(tiny_lm_dir):
    from tenfold.prune.cli import app

    res = CliRunner().invoke(app, ["run", "--model", str(tiny_lm_dir), "--out", str(tiny_lm_dir)])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)


def test_reproduce_smoke_profile_writes_every_metric(tiny_lm_dir, small_pixel_dir, tmp_path):
    from tenfold.prune.experiment import PROFILES, VARIANTS, run_reproduce
    result = run_reproduce(PROFILES["smoke"], 0, tmp_path, "smoke", lm_dir=tiny_lm_dir, pixel_dir=small_pixel_dir,
                           with_classifier=False)
    m = result.metrics
    assert set(m["ppl"]) == {"dense", *VARIANTS} and set(m["ppl"]["numerical"]) == {"0.5"}
    assert set(m["image_nll"]) == {"dense", *VARIANTS}
    assert set(m["throughput_ratio"]) == {"0.5"} and 0 < m["param_ratio"]["0.5"] < 1
    assert set(m["prune_seconds"]) == set(VARIANTS)
    assert {c.id for c in result.claims} >= {"numerical_beats_every_baseline_at_0.5", "compensation_lowers_ppl_at_0.5"}
    assert all((tmp_path / a).is_file() for a in result.artifacts)
