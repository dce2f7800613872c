"""The public `prune` call, allocations, bad input, the CLI verbs (run, eval) and the smoke reproduce."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.prune.pruner import ALLOCATIONS, METHODS, PruneConfig, allocate, prune
from tenfold.prune.surgery import blocks


def _calib(n=8, t=16, seed=0):
    return torch.randint(0, 64, (n, t), generator=torch.Generator().manual_seed(seed))


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _block_weights(model):
    return sum(b.weights() for b in blocks(model))


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_ratio_outside_unit_interval_raises_before_any_change(ratio, tiny_model):
    model = tiny_model("llama")
    ref = copy.deepcopy(model)
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        prune(model, _calib(), ratio)
    assert _same(model, ref)


def test_unknown_allocation_and_per_layer_ratios_outside_uniform_raise(tiny_model):
    with pytest.raises(InputError, match="allocation"):
        prune(tiny_model("llama"), _calib(), 0.3, config=PruneConfig(allocation="greedy"))
    with pytest.raises(InputError, match="uniform"):
        prune(tiny_model("llama"), _calib(), [0.3, 0.3], config=PruneConfig(allocation="alpha"))


def test_unsupported_architecture_lists_the_supported_ones():
    from transformers import BertConfig, BertForMaskedLM

    model = BertForMaskedLM(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=37))
    with pytest.raises(UnsupportedError, match="LlamaForCausalLM.*Phi3ForCausalLM.*GPT2LMHeadModel"):
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


@pytest.mark.parametrize("allocation", ALLOCATIONS)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_under_every_allocation_removes_the_requested_share(method, allocation, tiny_model):
    """One ratio is one weight budget: within one attention unit's weights of it, whatever the score."""
    model = tiny_model("llama", layers=3)
    total = _block_weights(model)
    unit = blocks(model)[0].unit_params()
    prune(model, _calib(), 0.4, method=method, config=PruneConfig(allocation=allocation))
    assert abs((total - _block_weights(model)) - 0.4 * total) <= unit


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(0.01, 100.0), seed=st.integers(0, 1000))
def test_standardised_and_uniform_allocations_ignore_a_layers_score_scale(scale, seed):
    """FLAP's standardisation and the per-layer ranking depend on the order within a layer only; the
    paper's alpha ranking does not (that is what makes it global)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    bl = blocks(model)
    g = torch.Generator().manual_seed(seed)
    scores = [(torch.rand(2, generator=g), torch.rand(24, generator=g)) for _ in bl]
    scaled = [scores[0], (scores[1][0] * scale, scores[1][1] * scale)]
    for alloc in ("standardised", "uniform"):
        a, b = allocate(bl, scores, [0.4, 0.4], alloc), allocate(bl, scaled, [0.4, 0.4], alloc)
        assert all(torch.equal(x, y) for x, y in zip(a.keep_channels + a.keep_units, b.keep_channels + b.keep_units,
                                                     strict=True))


def test_alpha_allocation_removes_a_unit_only_when_alpha_times_its_score_is_below_the_channels():
    """Hand-worked eq. (8): alpha = (weights of a unit) / (weights of a channel) = (2 g + 2) D_h / 3 for g query
    heads per key/value group (4 D_h / 3 without GQA); a unit with mean z 0.5 sits far above every channel
    (z <= 1), one with mean z -0.1 goes first."""
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    bl = blocks(model)
    ch = torch.linspace(0.0, 1.0, 24)
    scores = [(torch.tensor([0.5, -0.1]), ch), (torch.tensor([0.5, 0.6]), ch)]
    plan = allocate(bl, scores, [0.3, 0.3], "alpha")
    assert plan.keep_units[0].tolist() == [0] and plan.keep_units[1].tolist() == [0, 1]
    assert bl[0].unit_params() / bl[0].channel_params() == (2 * 2 + 2) * 4 / 3


@torch.no_grad()
def test_compensation_lowers_the_layer_output_error(tiny_lm):
    """Same removals, with vs without compensation: the compensated model's logits stay closer to dense."""
    model = copy.deepcopy(tiny_lm[0]).eval()
    calib = torch.randint(0, model.config.vocab_size, (8, 32), generator=torch.Generator().manual_seed(0))
    dense = model(input_ids=calib).logits
    errs = {}
    for comp in (True, False):
        pruned = prune(copy.deepcopy(model), calib, 0.3, compensate=comp, config=PruneConfig(allocation="uniform"))
        errs[comp] = (pruned(input_ids=calib).logits - dense).pow(2).mean().item()
    assert errs[True] < errs[False]


def test_cli_run_then_eval_on_a_model_by_path(lm_dir, tmp_path):
    from tenfold.prune.cli import app

    out = tmp_path / "pruned"
    runner = CliRunner()
    res = runner.invoke(app, ["run", "--model", str(lm_dir), "--ratio", "0.3", "--method", "numerical",
                              "--calib", "4", "--seq-len", "32", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{"):])
    assert report["params_after"] < report["params_before"]
    assert not list(tmp_path.glob(".pruned.partial-*"))
    res = runner.invoke(app, ["eval", "--model", str(out), "--seq-len", "32", "--windows", "2", "--new-tokens", "4",
                              "--out", str(tmp_path / "eval.json")])
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["perplexity"] > 1 and ev["generation_tokens_per_second"] > 0


def test_eval_reads_the_same_text_for_a_model_and_its_pruned_copy(lm_dir, tmp_path, monkeypatch):
    """The pruned folder records its source's corpus, so eval draws the same windows of the same stream."""
    import tenfold.prune.evaluate as ev
    from tenfold.prune.cli import app

    runner = CliRunner()
    out = tmp_path / "pruned"
    assert runner.invoke(app, ["run", "--model", str(lm_dir), "--calib", "4", "--seq-len", "32",
                               "--out", str(out)]).exit_code == 0
    seen = []
    real = ev.window_nll
    monkeypatch.setattr(ev, "window_nll", lambda model, ids, starts, *a, **k: (seen.append((ids, starts)),
                                                                             real(model, ids, starts, *a, **k))[1])
    texts = []
    for folder in (lm_dir, out):
        res = runner.invoke(app, ["eval", "--model", str(folder), "--seq-len", "32", "--windows", "3",
                                  "--new-tokens", "2"])
        assert res.exit_code == 0, res.output
        texts.append(json.loads(res.stdout[res.stdout.index("{"):])["text"])
    assert texts[0] == texts[1] and "python-topics validation split" in texts[0]
    assert torch.equal(seen[0][0], seen[1][0]) and torch.equal(seen[0][1], seen[1][1])


def test_eval_refuses_a_folder_that_does_not_say_its_text(tmp_path, tiny_model):
    from tenfold.prune.cli import app
    from tenfold.zoo.tiny_lm import train_tokenizer

    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "m")
    train_tokenizer(["some text to train a tokenizer on"] * 10, 300).save_pretrained(tmp_path / "m")
    res = CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "m")])
    assert res.exit_code != 0 and isinstance(res.exception, InputError) and "--text" in str(res.exception)


def test_cli_refuses_to_overwrite_the_input_model(lm_dir):
    from tenfold.prune.cli import app

    res = CliRunner().invoke(app, ["run", "--model", str(lm_dir), "--out", str(lm_dir)])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)


def test_reproduce_smoke_profile_writes_every_metric(lm_dir, small_pixel_dir, tmp_path):
    from tenfold.prune.experiment import BASELINES, PROFILES, run_reproduce

    st = PROFILES["smoke"]
    result = run_reproduce(st, 0, tmp_path, "smoke", lm_dirs={st.lms[0]: lm_dir}, pixel_dir=small_pixel_dir,
                           with_classifier=False)
    m = result.metrics["lm"][st.lms[0]]
    assert set(m["ppl"]) == {"0.5"} and set(m["ppl"]["0.5"]) == set(st.allocations)
    assert {"numerical", "numerical-nocomp", "numerical-clip", *BASELINES} <= set(m["ppl"]["0.5"]["alpha"])
    assert m["eval"]["windows"] == st.eval_windows and m["eval"]["documents_in_both_splits"] == 0
    assert set(m["score_analysis"]) == {"z_by_layer", "alpha_cliff", "lambda_sensitivity"}
    assert m["layer_runs"]["dense_scoring_pass"] == m["layer_runs"]["layers"]
    assert {c.verdict for c in result.claims} <= {"holds", "inconclusive", "fails"}
    assert all(c.interval is not None for c in result.claims)
    assert all((tmp_path / a).is_file() for a in result.artifacts)
    json.dumps(result.to_dict())


@pytest.mark.parametrize("args, message", [
    (["--allocation", "greedy"], "--allocation"),
    (["--device-map", "everywhere"], "--device-map"),
    (["--offload-folder", "/tmp/x"], "--device-map"),
    (["--clip", "--method", "flap"], "--clip"),
    (["--ratio", "1.5"], "--ratio"),
])
def test_cli_run_refuses_bad_options_before_any_work(args, message, lm_dir, tmp_path):
    from tenfold.prune.cli import app

    res = CliRunner().invoke(app, ["run", "--model", str(lm_dir), "--out", str(tmp_path / "o"), *args])
    assert res.exit_code != 0 and isinstance(res.exception, InputError) and message in str(res.exception)
    assert not (tmp_path / "o").exists()


def test_text_split_refuses_a_corpus_whose_validation_documents_are_also_training_documents(monkeypatch):
    from types import SimpleNamespace

    import tenfold.data.text as text
    from tenfold.core.errors import InputError
    from tenfold.prune.experiment import text_split

    leaky = SimpleNamespace(name="leaky", train=["a b c", "d e f", "g h"], valid=["x y", "d e f"])
    monkeypatch.setattr(text, "load_corpus", lambda name: leaky)
    with pytest.raises(InputError, match="1 documents are in both"):
        text_split("leaky", tokenizer=None)
