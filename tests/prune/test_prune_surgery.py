"""Every supported family: zeroed units removed without changing outputs; pruned models save and load
with `load_pruned`, with `AutoModelForCausalLM(trust_remote_code=True)` without tenfold, and (uniform
sizes) with the stock class and no remote code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tenfold.prune.pruner import PruneConfig, prune
from tenfold.prune.surgery import MODELING_FILE, blocks, layer_sizes, load_pruned, save_pruned, shrink_block

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "opt", "gpt2")


def _ids(n=3, t=12, seed=0):
    return torch.randint(0, 64, (n, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_surgery_keeps_outputs_identical_when_removed_units_are_zero(family, tiny_model):
    model = tiny_model(family)
    b = blocks(model)[0]
    cols = b.unit_channels(1)
    if type(b.attn_out).__name__ == "Conv1D":  # weight (in, out)
        b.attn_out.weight[cols] = 0
        b.mlp_out.weight[[3, 10]] = 0
    else:
        b.attn_out.weight[:, cols] = 0
        b.mlp_out.weight[:, [3, 10]] = 0
    ids = _ids()
    before = model(input_ids=ids).logits
    keep_units = torch.tensor([u for u in range(b.n_units) if u != 1])
    keep_channels = torch.tensor([c for c in range(b.n_channels) if c not in (3, 10)])
    shrink_block(b, keep_units, keep_channels)
    torch.testing.assert_close(model(input_ids=ids).logits, before, rtol=1e-5, atol=1e-5)
    fresh = blocks(model)[0]
    assert (fresh.n_channels, fresh.n_units) == (46, len(keep_units))


def _globally_pruned(family, tiny_model):
    """Different sizes per layer, as global pruning gives: 20% of layer 0, 60% of layer 1 (heads too)."""
    model = tiny_model(family, seed=1)
    prune(model, _ids(8, 16, seed=1), [0.2, 0.6], method="numerical", config=PruneConfig(allocation="uniform"))
    sizes = layer_sizes(model)
    assert sizes[0]["heads"] > sizes[1]["heads"] and sizes[0]["intermediate"] > sizes[1]["intermediate"]
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_globally_pruned_model_reloads_with_identical_logits(family, tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM

    model = _globally_pruned(family, tiny_model)
    sizes = layer_sizes(model)
    ids = _ids()
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    save_pruned(model, tmp_path / "m")
    assert (tmp_path / "m" / MODELING_FILE).is_file()
    for back in (load_pruned(tmp_path / "m"), AutoModelForCausalLM.from_pretrained(tmp_path / "m", trust_remote_code=True)):
        assert layer_sizes(back) == sizes
        with torch.no_grad():
            torch.testing.assert_close(back(input_ids=ids).logits, ref, rtol=0, atol=0)
    out = back.generate(ids[:1, :4], max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 9)


def test_remote_code_loads_without_tenfold(tmp_path, tiny_model):
    """A fresh interpreter where `import tenfold` fails loads every family's saved folder."""
    folders = {}
    for family in FAMILIES:
        model = _globally_pruned(family, tiny_model)
        save_pruned(model, tmp_path / family)
        with torch.no_grad():
            torch.save(model(input_ids=_ids()).logits, tmp_path / f"{family}.pt")
        folders[family] = str(tmp_path / family)
    script = (
        "import sys, json, torch\n"
        "sys.modules['tenfold'] = None\n"  # any import of tenfold now raises ImportError
        "from transformers import AutoModelForCausalLM\n"
        "ids = torch.randint(0, 64, (3, 12), generator=torch.Generator().manual_seed(0))\n"
        "out = {}\n"
        "for fam, path in json.loads(sys.argv[1]).items():\n"
        "    m = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()\n"
        "    ref = torch.load(path + '.pt', weights_only=True)\n"
        "    with torch.no_grad():\n"
        "        out[fam] = float((m(input_ids=ids).logits - ref).abs().max())\n"
        "print(json.dumps(out))\n")
    res = subprocess.run([sys.executable, "-c", script, json.dumps(folders)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    diffs = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(diffs) == set(FAMILIES) and max(diffs.values()) == 0.0


@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma2", "phi3"])
@pytest.mark.parametrize("method", ["numerical", "flap"])
def test_uniform_prune_loads_with_the_stock_class_alone(family, method, tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM

    model = tiny_model(family)
    prune(model, _ids(8, 16, seed=2), 0.5, method=method, config=PruneConfig(allocation="uniform"))
    save_pruned(model, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert "auto_map" not in config and not (tmp_path / "m" / MODELING_FILE).exists()
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    assert type(back) is type(model)
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)
    assert back.config.num_key_value_heads == 1 and back.config.intermediate_size < 48


def test_gqa_units_remove_a_kv_head_with_its_query_heads(tiny_model):
    model = tiny_model("llama")
    shrink_block(blocks(model)[1], torch.tensor([0]), torch.arange(48))
    attn = model.model.layers[1].self_attn
    assert attn.q_proj.out_features == 2 * attn.head_dim and attn.k_proj.out_features == attn.head_dim
    assert attn.o_proj.in_features == 2 * attn.head_dim
    model(input_ids=_ids())  # still runs
