"""Fixtures of the prune tests: tiny randomly initialised models of every supported family."""

from __future__ import annotations

import pytest
import torch


def _tiny_model(family: str, seed: int = 0):
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



@pytest.fixture
def tiny_model():
    """Factory: tiny_model(family) -> a fresh 2-layer model (llama, mistral, qwen2, opt, gpt2)."""
    return _tiny_model


@pytest.fixture(scope="session")
def small_pixel_dir(tmp_path_factory):
    """A small pixel-ar model (2 layers, 30 steps), built once per session."""
    from tenfold.zoo.pixel_ar import build_pixel_ar

    folder = tmp_path_factory.mktemp("pixel-ar")
    build_pixel_ar(folder, seed=0, small=True)
    return folder
