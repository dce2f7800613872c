"""Surgery on every supported family: zeroed units removed without changing outputs; save/load."""

from __future__ import annotations

import copy

import pytest
import torch

from tenfold.prune.pruner import PruneConfig, prune
from tenfold.prune.surgery import blocks, load_pruned, save_pruned, shrink_block

FAMILIES = ("llama", "mistral", "qwen2", "opt", "gpt2")


def tiny_model(family: str, seed: int = 0):
    """A randomly initialised 2-layer model of `family` (no downloads), in eval mode."""
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=64, num_hidden_layers=2)
    if family in ("llama", "mistral", "qwen2"):
        cls, cfg = {"llama": (tf.LlamaForCausalLM, tf.LlamaConfig), "mistral": (tf.MistralForCausalLM, tf.MistralConfig),
                    "qwen2": (tf.Qwen2ForCausalLM, tf.Qwen2Config)}[family]
        model = cls(cfg(hidden_size=32, intermediate_size=48, num_attention_heads=4, num_key_value_heads=2, **common))
    elif family == "opt":
        model = tf.OPTForCausalLM(tf.OPTConfig(hidden_size=32, ffn_dim=48, num_attention_heads=4, word_embed_proj_dim=32,
                                               max_position_embeddings=64, **common))
    else:
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=64, n_embd=32, n_inner=48, n_layer=2, n_head=4, n_positions=64))
    return model.eval()


def _ids(n=3, t=12, seed=0):
    return torch.randint(0, 64, (n, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_surgery_keeps_outputs_identical_when_removed_units_are_zero(family):
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
def test_pruned_model_saves_reloads_with_its_class_and_generates(family, tmp_path):
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
def test_uniform_llama_prune_loads_with_the_stock_class_alone(method, tmp_path):
    from transformers import LlamaForCausalLM

    model = tiny_model("llama")
    prune(model, _ids(8, 16, seed=2), 0.5, method=method, config=PruneConfig(scope="layer"))
    save_pruned(model, tmp_path / "m")
    back = LlamaForCausalLM.from_pretrained(tmp_path / "m").eval()
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids).logits, model(input_ids=ids).logits)
    assert back.config.num_key_value_heads == 1 and back.config.intermediate_size == 24


def test_gqa_units_remove_a_kv_head_with_its_query_heads():
    model = tiny_model("llama")
    b = blocks(model)[1]
    shrink_block(b, torch.tensor([0]), torch.arange(48))
    attn = b.attn
    assert attn.q_proj.out_features == 2 * attn.head_dim and attn.k_proj.out_features == attn.head_dim
    assert attn.o_proj.in_features == 2 * attn.head_dim
    model(input_ids=_ids())  # still runs
