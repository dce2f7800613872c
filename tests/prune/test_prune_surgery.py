"""Surgery on every supported family: zeroed units removed without changing outputs; save/load."""

from __future__ import annotations

import pytest
import torch

from tenfold.prune.pruner import PruneConfig, prune
from tenfold.prune.surgery import blocks, load_pruned, save_pruned, shrink_block

FAMILIES = ("llama", "mistral", "qwen2", "opt", "gpt2")


def _ids(n=3, t=12, seed=0):
    return torch.randint(0, 64, (n, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_surgery_keeps_outputs_identical_when_removed_units_are_zero(family, tiny_model):
    model = tiny_model(family)
    b = blocks(model)[0]
    # zero attention unit 1's output-projection columns and MLP channels 3, 10
    attn_w = b.attn_out.weight
    cols = b.unit_channels(1)
    if type(b.attn_out).__name__ == "Conv1D":
        attn_w[cols] = 0
        b.mlp_out.weight[[3, 10]] = 0
    else:
        attn_w[:, cols] = 0
        b.mlp_out.weight[:, [3, 10]] = 0
    ids = _ids()
    before = model(input_ids=ids).logits
    keep_units = torch.tensor([u for u in range(b.n_units) if u != 1])
    keep_channels = torch.tensor([c for c in range(b.n_channels) if c not in (3, 10)])
    shrink_block(b, keep_units, keep_channels)
    after = model(input_ids=ids).logits
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert b.n_channels == 46 and b.n_units == len(keep_units)


@pytest.mark.parametrize("family", FAMILIES)
def test_pruned_model_saves_reloads_with_its_class_and_generates(family, tmp_path, tiny_model):
    model = tiny_model(family)
    calib = _ids(8, 16, seed=1)
    prune(model, calib, 0.3, method="numerical", config=PruneConfig(scope="layer"))
    ids = _ids()
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    save_pruned(model, tmp_path / "m")
    back = load_pruned(tmp_path / "m")
    assert type(back) is type(model)
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids).logits, ref)
    out = back.generate(ids[:1, :4], max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 10)
    assert [s["intermediate"] for s in back.config.tenfold_prune["layers"]] == [b.n_channels for b in blocks(back)]


@pytest.mark.parametrize("method", ["numerical", "flap"])
def test_uniform_llama_prune_loads_with_the_stock_class_alone(method, tmp_path, tiny_model):
    from transformers import LlamaForCausalLM

    model = tiny_model("llama")
    prune(model, _ids(8, 16, seed=2), 0.5, method=method, config=PruneConfig(scope="layer"))
    save_pruned(model, tmp_path / "m")
    back = LlamaForCausalLM.from_pretrained(tmp_path / "m").eval()
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids).logits, model(input_ids=ids).logits)
    assert back.config.num_key_value_heads == 1 and back.config.intermediate_size == 24


def test_gqa_units_remove_a_kv_head_with_its_query_heads(tiny_model):
    model = tiny_model("llama")
    b = blocks(model)[1]
    shrink_block(b, torch.tensor([0]), torch.arange(48))
    attn = b.attn
    assert attn.q_proj.out_features == 2 * attn.head_dim and attn.k_proj.out_features == attn.head_dim
    assert attn.o_proj.in_features == 2 * attn.head_dim
    model(input_ids=_ids())  # still runs
