"""Fixtures of the prune tests: tiny randomly initialised models of every supported family."""

from __future__ import annotations

import pytest
import torch


def _tiny_model(family: str, seed: int = 0, layers: int = 2):
    """A randomly initialised model of `family` (no downloads), in eval mode.

    LLaMA-layout models get 4 query heads in 2 key/value groups of head_dim 8 (explicit, as Gemma
    and Qwen3 configs state it), 48 MLP channels; OPT and GPT-2 4 heads of 8.
    """
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=64, num_hidden_layers=layers, hidden_size=32, intermediate_size=48,
                  num_attention_heads=4, num_key_value_heads=2)
    llama_like = {"llama": (tf.LlamaForCausalLM, tf.LlamaConfig), "mistral": (tf.MistralForCausalLM, tf.MistralConfig),
                  "qwen2": (tf.Qwen2ForCausalLM, tf.Qwen2Config), "qwen3": (tf.Qwen3ForCausalLM, tf.Qwen3Config),
                  "gemma": (tf.GemmaForCausalLM, tf.GemmaConfig), "gemma2": (tf.Gemma2ForCausalLM, tf.Gemma2Config),
                  "gemma3": (tf.Gemma3ForCausalLM, tf.Gemma3TextConfig)}
    if family in llama_like:
        cls, cfg = llama_like[family]
        model = cls(cfg(head_dim=8, pad_token_id=0, bos_token_id=1, eos_token_id=2, **common))
    elif family == "phi3":
        model = tf.Phi3ForCausalLM(tf.Phi3Config(pad_token_id=0, bos_token_id=1, eos_token_id=2, **common))
    elif family == "opt":
        model = tf.OPTForCausalLM(tf.OPTConfig(vocab_size=64, num_hidden_layers=layers, hidden_size=32, ffn_dim=48,
                                               num_attention_heads=4, word_embed_proj_dim=32, max_position_embeddings=64))
    else:
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=64, n_embd=32, n_inner=48, n_layer=layers, n_head=4,
                                                 n_positions=64))
    return model.eval()


@pytest.fixture
def tiny_model():
    """Factory: tiny_model(family, seed=0, layers=2) -> a fresh model; family one of llama, mistral, qwen2,
    qwen3, gemma, gemma2, gemma3, phi3, opt, gpt2."""
    return _tiny_model


@pytest.fixture(scope="session")
def small_pixel_dir(tmp_path_factory):
    """A small pixel-ar model (2 layers, 30 steps), built once per session."""
    from tenfold.zoo.pixel_ar import build_pixel_ar

    folder = tmp_path_factory.mktemp("pixel-ar")
    build_pixel_ar(folder, seed=0, small=True)
    return folder


@pytest.fixture(scope="session")
def lm_dir(tiny_lm_dir, tmp_path_factory):
    """The small test LM as a zoo folder: a copy with the zoo.json that names its corpus."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("zoo") / "tiny-lm"
    shutil.copytree(tiny_lm_dir, folder)
    (folder / "zoo.json").write_text(json.dumps({"name": "tiny-lm", "corpus": "python-topics", "training_context": 64}))
    return folder
