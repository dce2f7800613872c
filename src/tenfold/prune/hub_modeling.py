"""Stock transformers causal LMs whose decoder layers have their own (pruned) sizes.

`save_pruned` copies this file, unchanged, next to a pruned model as `modeling_tenfold_pruned.py`
and points `auto_map` in config.json at the matching class below, so that

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

loads a model whose layers have different head counts and MLP widths (global pruning) on a machine
without tenfold; the Hub convention for architectures a stock config cannot express. The file
imports only torch and transformers. Each class is the stock class; after building it with the
dense sizes of the config it resizes every layer to `config.tenfold_prune["layers"][i]`
(`heads`, `kv_heads`, `intermediate`) before the weights are loaded.

`tenfold.prune.surgery` uses the same `resize_attention` / `resize_mlp` when it removes units, so the
shapes a pruned model is saved with and the shapes it is loaded into come from one place.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import (
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    GemmaForCausalLM,
    GPT2LMHeadModel,
    LlamaForCausalLM,
    MistralForCausalLM,
    OPTForCausalLM,
    Phi3ForCausalLM,
    Qwen2ForCausalLM,
    Qwen3ForCausalLM,
)
from transformers.pytorch_utils import Conv1D

CONFIG_KEY = "tenfold_prune"
# model_type -> layout: "llama" (separate q/k/v/o, gate/up/down), "phi3" (fused qkv, fused gate_up),
# "opt" (q/k/v/out_proj, fc1/fc2), "gpt2" (fused Conv1D c_attn, c_fc/c_proj)
KINDS = {"llama": "llama", "mistral": "llama", "qwen2": "llama", "qwen3": "llama", "gemma": "llama",
         "gemma2": "llama", "gemma3_text": "llama", "phi3": "phi3", "opt": "opt", "gpt2": "gpt2"}


def kind_of(config) -> str | None:
    return KINDS.get(getattr(config, "model_type", None))


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    kind = kind_of(model.config)
    if kind == "opt":
        return model.model.decoder.layers
    if kind == "gpt2":
        return model.transformer.h
    return model.model.layers


def _empty_like(module: nn.Module, out_features: int | None = None, in_features: int | None = None) -> nn.Module:
    """A layer shaped like `module` with new sizes, allocated uninitialised on `module`'s device."""
    w = module.weight
    if type(module).__name__ == "Conv1D":  # weight (in, out)
        n_in, n_out = in_features or w.shape[0], out_features or w.shape[1]
        with torch.device("meta"):
            new = Conv1D(n_out, n_in).to(w.dtype)
    else:
        n_in, n_out = in_features or w.shape[1], out_features or w.shape[0]
        new = nn.Linear(n_in, n_out, bias=module.bias is not None, device="meta", dtype=w.dtype)
    return new if w.device.type == "meta" else new.to_empty(device=w.device)


def resize_attention(layer: nn.Module, kind: str, heads: int, kv_heads: int, head_dim: int) -> None:
    """Give a decoder layer's attention `heads` query heads and `kv_heads` key/value heads."""
    q, kv = heads * head_dim, kv_heads * head_dim
    if kind == "gpt2":
        a = layer.attn
        a.c_attn = _empty_like(a.c_attn, out_features=3 * q)
        a.c_proj = _empty_like(a.c_proj, in_features=q)
        a.num_heads, a.split_size = heads, q
        return
    a = layer.self_attn
    if kind == "phi3":  # reads its head counts from its config: give this layer its own copy
        a.qkv_proj = _empty_like(a.qkv_proj, out_features=q + 2 * kv)
        a.config = copy.copy(a.config)
        a.config.num_attention_heads, a.config.num_key_value_heads = heads, kv_heads
        a.num_key_value_heads = kv_heads
    else:
        a.q_proj = _empty_like(a.q_proj, out_features=q)
        a.k_proj = _empty_like(a.k_proj, out_features=kv)
        a.v_proj = _empty_like(a.v_proj, out_features=kv)
    if kind == "opt":
        a.out_proj = _empty_like(a.out_proj, in_features=q)
        a.num_heads = heads
    else:
        a.o_proj = _empty_like(a.o_proj, in_features=q)


def resize_mlp(layer: nn.Module, kind: str, intermediate: int) -> None:
    """Give a decoder layer's MLP `intermediate` channels."""
    if kind == "opt":
        layer.fc1 = _empty_like(layer.fc1, out_features=intermediate)
        layer.fc2 = _empty_like(layer.fc2, in_features=intermediate)
        return
    mlp = layer.mlp
    if kind == "gpt2":
        mlp.c_fc = _empty_like(mlp.c_fc, out_features=intermediate)
        mlp.c_proj = _empty_like(mlp.c_proj, in_features=intermediate)
        return
    if kind == "phi3":
        mlp.gate_up_proj = _empty_like(mlp.gate_up_proj, out_features=2 * intermediate)
    else:
        mlp.gate_proj = _empty_like(mlp.gate_proj, out_features=intermediate)
        mlp.up_proj = _empty_like(mlp.up_proj, out_features=intermediate)
    mlp.down_proj = _empty_like(mlp.down_proj, in_features=intermediate)
    if hasattr(mlp, "intermediate_size"):
        mlp.intermediate_size = intermediate


def head_dim_of(config) -> int:
    explicit = getattr(config, "head_dim", None)
    if explicit:
        return int(explicit)
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    return config.hidden_size // heads


def resize_model(model: nn.Module) -> None:
    """Resize every decoder layer to the sizes recorded in `config.tenfold_prune["layers"]`."""
    sizes = (getattr(model.config, CONFIG_KEY, None) or {}).get("layers")
    if not sizes:
        return
    kind, hd = kind_of(model.config), head_dim_of(model.config)
    layers = decoder_layers(model)
    if len(sizes) != len(layers):
        raise ValueError(f"config records sizes for {len(sizes)} layers, the model has {len(layers)}")
    for layer, size in zip(layers, sizes, strict=True):
        resize_attention(layer, kind, size["heads"], size["kv_heads"], hd)
        resize_mlp(layer, kind, size["intermediate"])


def _pruned(base: type) -> type:
    def __init__(self, config, *args, **kwargs):
        base.__init__(self, config, *args, **kwargs)
        resize_model(self)

    return type(f"Pruned{base.__name__}", (base,), {"__init__": __init__, "__module__": __name__})


PrunedLlamaForCausalLM = _pruned(LlamaForCausalLM)
PrunedMistralForCausalLM = _pruned(MistralForCausalLM)
PrunedQwen2ForCausalLM = _pruned(Qwen2ForCausalLM)
PrunedQwen3ForCausalLM = _pruned(Qwen3ForCausalLM)
PrunedGemmaForCausalLM = _pruned(GemmaForCausalLM)
PrunedGemma2ForCausalLM = _pruned(Gemma2ForCausalLM)
PrunedGemma3ForCausalLM = _pruned(Gemma3ForCausalLM)
PrunedPhi3ForCausalLM = _pruned(Phi3ForCausalLM)
PrunedOPTForCausalLM = _pruned(OPTForCausalLM)
PrunedGPT2LMHeadModel = _pruned(GPT2LMHeadModel)

PRUNED = {"llama": PrunedLlamaForCausalLM, "mistral": PrunedMistralForCausalLM, "qwen2": PrunedQwen2ForCausalLM,
          "qwen3": PrunedQwen3ForCausalLM, "gemma": PrunedGemmaForCausalLM, "gemma2": PrunedGemma2ForCausalLM,
          "gemma3_text": PrunedGemma3ForCausalLM, "phi3": PrunedPhi3ForCausalLM, "opt": PrunedOPTForCausalLM,
          "gpt2": PrunedGPT2LMHeadModel}
