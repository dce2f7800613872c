"""Physical removal of attention heads and MLP channels from `transformers` causal LMs.

One `Block` view per decoder layer hides the family differences (LLaMA / Mistral / Qwen2: q,k,v,o +
gate,up,down; OPT: q,k,v,out_proj + fc1,fc2; GPT-2: fused c_attn Conv1D + c_fc,c_proj Conv1D).
The paper's convention is X·W with W of shape (D, D') (Sec. 3.1); `out_weight` returns the output
projection in that form whatever the storage (nn.Linear stores W^T, GPT-2's Conv1D stores W).

Attention units: with grouped-query attention one unit is a key/value group (its kv head and the
query heads that read it), so q, k, v and o share one mask as Sec. 3.1 asks; with multi-head
attention a unit is one head.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tenfold.core.errors import InputError, UnsupportedError

LLAMA_LIKE = ("llama", "mistral", "qwen2")
SUPPORTED = "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, OPTForCausalLM, GPT2LMHeadModel"
CONFIG_KEY = "tenfold_prune"  # per-layer sizes recorded in config.json


def family(model: nn.Module) -> str:
    """'llama' (LLaMA, Mistral, Qwen2), 'opt' or 'gpt2'; UnsupportedError otherwise."""
    kind = getattr(getattr(model, "config", None), "model_type", None)
    if kind in LLAMA_LIKE:
        return "llama"
    if kind in ("opt", "gpt2"):
        return kind
    raise UnsupportedError(f"prune supports {SUPPORTED}; got {type(model).__name__} "
                           f"(model_type={kind!r}). Convert the model or open an issue for its family.")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    fam = family(model)
    if fam == "llama":
        return model.model.layers
    if fam == "opt":
        return model.model.decoder.layers
    return model.transformer.h


@dataclass
class Block:
    """One decoder layer seen through the paper's lens: attention units and MLP channels."""

    layer: nn.Module
    fam: str
    n_heads: int
    n_kv: int
    head_dim: int

    # -- modules -------------------------------------------------------------------------
    @property
    def attn(self) -> nn.Module:
        return self.layer.attn if self.fam == "gpt2" else self.layer.self_attn

    @property
    def attn_out(self) -> nn.Module:
        return {"llama": lambda: self.attn.o_proj, "opt": lambda: self.attn.out_proj,
                "gpt2": lambda: self.attn.c_proj}[self.fam]()

    @property
    def mlp_out(self) -> nn.Module:
        return {"llama": lambda: self.layer.mlp.down_proj, "opt": lambda: self.layer.fc2,
                "gpt2": lambda: self.layer.mlp.c_proj}[self.fam]()

    @property
    def mlp_in(self) -> list[nn.Module]:
        if self.fam == "llama":
            return [self.layer.mlp.gate_proj, self.layer.mlp.up_proj]
        return [self.layer.fc1] if self.fam == "opt" else [self.layer.mlp.c_fc]

    def site(self, name: str) -> nn.Module:
        return self.attn_out if name == "attn" else self.mlp_out

    # -- sizes -----------------------------------------------------------------------------
    @property
    def group(self) -> int:
        """Query heads per attention unit."""
        return self.n_heads // self.n_kv

    @property
    def n_units(self) -> int:
        return self.n_kv

    @property
    def n_channels(self) -> int:
        return out_weight(self.mlp_out).shape[0]

    def unit_channels(self, unit: int) -> torch.Tensor:
        """Input channels of the attention output projection that belong to attention unit `unit`."""
        width = self.group * self.head_dim
        return torch.arange(unit * width, (unit + 1) * width)

    def unit_params(self) -> int:
        """Parameters (weights) removed with one attention unit (q, k, v, o)."""
        hidden = out_weight(self.attn_out).shape[1]
        return hidden * self.head_dim * (2 * self.group + 2)

    def channel_params(self) -> int:
        """Parameters (weights) removed with one MLP channel (gate/up/down or fc1/fc2)."""
        hidden = out_weight(self.mlp_out).shape[1]
        return hidden * (len(self.mlp_in) + 1)

    def unit_weights(self, unit: int, grad: bool = False) -> list[torch.Tensor]:
        """The weight slices (q, k, v, o) of one attention unit (or their gradients)."""
        q_rows = self.unit_channels(unit)
        kv_rows = torch.arange(unit * self.head_dim, (unit + 1) * self.head_dim)
        q, k, v = self._qkv_weights(grad)
        return [q[q_rows], k[kv_rows], v[kv_rows], out_weight(self.attn_out, grad)[q_rows]]

    def _qkv_weights(self, grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v weights as (out_features, hidden)."""
        a = self.attn
        if self.fam == "gpt2":
            w = _param(a.c_attn, grad).t()
            d = w.shape[0] // 3
            return w[:d], w[d: 2 * d], w[2 * d:]
        return _param(a.q_proj, grad), _param(a.k_proj, grad), _param(a.v_proj, grad)

    def channel_weights(self, grad: bool = False) -> list[torch.Tensor]:
        """Per-MLP-channel weights (one row per channel): every input projection and W of the output one."""
        return [in_weight(m, grad) for m in self.mlp_in] + [out_weight(self.mlp_out, grad)]


def blocks(model: nn.Module) -> list[Block]:
    fam = family(model)
    out = []
    for layer in decoder_layers(model):
        if fam == "llama":
            a = layer.self_attn
            hd = a.head_dim
            n_heads = a.q_proj.out_features // hd
            n_kv = a.k_proj.out_features // hd
        elif fam == "opt":
            a = layer.self_attn
            hd, n_heads = a.head_dim, a.num_heads
            n_kv = n_heads
        else:
            a = layer.attn
            hd, n_heads = a.head_dim, a.num_heads
            n_kv = n_heads
        out.append(Block(layer, fam, n_heads, n_kv, hd))
    return out


def _param(module: nn.Module, grad: bool) -> torch.Tensor:
    return module.weight.grad if grad else module.weight


def out_weight(module: nn.Module, grad: bool = False) -> torch.Tensor:
    """The output projection as the paper's W (input channels D, outputs D')."""
    w = _param(module, grad)
    return w if _is_conv1d(module) else w.t()


def in_weight(module: nn.Module, grad: bool = False) -> torch.Tensor:
    """An input projection as (out_features, hidden): one row per produced channel."""
    w = _param(module, grad)
    return w.t() if _is_conv1d(module) else w


def set_out_weight(module: nn.Module, w: torch.Tensor) -> None:
    with torch.no_grad():
        module.weight.copy_(w if _is_conv1d(module) else w.t())


def _is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D"


# -- slicing -------------------------------------------------------------------------------------
def _slice_linear(m: nn.Module, idx: torch.Tensor, dim: str) -> nn.Module:
    """A new layer keeping output rows (`dim="out"`) or input columns (`dim="in"`) at `idx`."""
    idx = idx.to(m.weight.device)
    if _is_conv1d(m):  # weight (in, out)
        w = m.weight.index_select(1 if dim == "out" else 0, idx)
        new = type(m)(w.shape[1], w.shape[0])
        new.weight = nn.Parameter(w.clone())
        b = m.bias.index_select(0, idx) if dim == "out" else m.bias
        new.bias = nn.Parameter(b.clone())
        return new
    w = m.weight.index_select(0 if dim == "out" else 1, idx)
    bias = m.bias is not None
    new = nn.Linear(w.shape[1], w.shape[0], bias=bias, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if bias:
            new.bias.copy_(m.bias.index_select(0, idx) if dim == "out" else m.bias)
    return new


def shrink_block(block: Block, keep_units: torch.Tensor, keep_channels: torch.Tensor) -> None:
    """Remove every attention unit and MLP channel not listed in `keep_units` / `keep_channels`."""
    keep_units = torch.as_tensor(keep_units, dtype=torch.long).sort().values
    keep_channels = torch.as_tensor(keep_channels, dtype=torch.long).sort().values
    if len(keep_units) == 0 or len(keep_channels) == 0:
        raise InputError("a layer must keep at least one attention head and one MLP channel; lower the ratio")
    if len(keep_units) < block.n_units:
        _shrink_attention(block, keep_units)
    if len(keep_channels) < block.n_channels:
        _shrink_mlp(block, keep_channels)


def _shrink_attention(block: Block, keep: torch.Tensor) -> None:
    q_idx = torch.cat([block.unit_channels(int(u)) for u in keep])
    kv_idx = torch.cat([torch.arange(int(u) * block.head_dim, (int(u) + 1) * block.head_dim) for u in keep])
    a = block.attn
    n_q = len(q_idx) // block.head_dim
    if block.fam == "gpt2":
        d = a.c_attn.weight.shape[1] // 3
        a.c_attn = _slice_linear(a.c_attn, torch.cat([q_idx, q_idx + d, q_idx + 2 * d]), "out")
        a.c_proj = _slice_linear(a.c_proj, q_idx, "in")
        a.num_heads, a.split_size = n_q, n_q * block.head_dim
    else:
        a.q_proj = _slice_linear(a.q_proj, q_idx, "out")
        a.k_proj = _slice_linear(a.k_proj, kv_idx, "out")
        a.v_proj = _slice_linear(a.v_proj, kv_idx, "out")
        if block.fam == "opt":
            a.out_proj = _slice_linear(a.out_proj, q_idx, "in")
            a.num_heads = n_q
        else:
            a.o_proj = _slice_linear(a.o_proj, q_idx, "in")
    block.n_heads, block.n_kv = n_q, len(keep)


def _shrink_mlp(block: Block, keep: torch.Tensor) -> None:
    layer = block.layer
    if block.fam == "llama":
        mlp = layer.mlp
        mlp.gate_proj = _slice_linear(mlp.gate_proj, keep, "out")
        mlp.up_proj = _slice_linear(mlp.up_proj, keep, "out")
        mlp.down_proj = _slice_linear(mlp.down_proj, keep, "in")
        mlp.intermediate_size = len(keep)
    elif block.fam == "opt":
        layer.fc1 = _slice_linear(layer.fc1, keep, "out")
        layer.fc2 = _slice_linear(layer.fc2, keep, "in")
    else:
        layer.mlp.c_fc = _slice_linear(layer.mlp.c_fc, keep, "out")
        layer.mlp.c_proj = _slice_linear(layer.mlp.c_proj, keep, "in")


def add_output_bias(block: Block, site: str, bias: torch.Tensor) -> None:
    """Add `bias` to an output projection (FLAP's bias compensation), creating the bias if absent.

    LLaMA-family configs can only switch biases on for a whole module (`attention_bias`,
    `mlp_bias`), so the sibling projections get zero biases too and the stock class still loads.
    """
    m = block.site(site)
    if m.bias is not None:
        with torch.no_grad():
            m.bias.add_(bias.to(m.bias))
        return
    if block.fam != "llama" or block.layer.self_attn.config.model_type != "llama":
        raise UnsupportedError(f"{block.fam}: this architecture has no bias slot on its {site} output projection")
    siblings = ([block.attn.q_proj, block.attn.k_proj, block.attn.v_proj, block.attn.o_proj] if site == "attn"
                else [block.layer.mlp.gate_proj, block.layer.mlp.up_proj, block.layer.mlp.down_proj])
    for s in siblings:
        if s.bias is None:
            s.bias = nn.Parameter(torch.zeros(s.out_features, dtype=s.weight.dtype, device=s.weight.device))
    with torch.no_grad():
        m.bias.add_(bias.to(m.bias))


# -- config, save, load ------------------------------------------------------------------------
def layer_sizes(model: nn.Module) -> list[dict]:
    return [{"heads": b.n_heads, "kv_heads": b.n_kv, "intermediate": b.n_channels} for b in blocks(model)]


def _stock_fields(fam: str) -> tuple[str, str, str | None]:
    """(heads field, intermediate field, kv-heads field) of the stock config."""
    return {"llama": ("num_attention_heads", "intermediate_size", "num_key_value_heads"),
            "opt": ("num_attention_heads", "ffn_dim", None),
            "gpt2": ("n_head", "n_inner", None)}[fam]


def record_sizes(model: nn.Module, dense: dict | None = None, extra: dict | None = None) -> dict:
    """Write the per-layer sizes into `model.config` (and the stock fields when they can hold them)."""
    fam = family(model)
    cfg = model.config
    heads_f, inter_f, kv_f = _stock_fields(fam)
    prev = getattr(cfg, CONFIG_KEY, None) or {}
    if dense is None:
        dense = prev.get("dense") or {k: getattr(cfg, k) for k in (heads_f, inter_f, kv_f) if k}
        if fam == "gpt2" and dense.get("n_inner") is None:
            dense["n_inner"] = 4 * cfg.n_embd
        if fam == "llama":
            dense["head_dim"] = blocks(model)[0].head_dim
    sizes = layer_sizes(model)
    info = {"dense": dense, "layers": sizes, "info": {**prev.get("info", {}), **(extra or {})}}
    uniform = all(s == sizes[0] for s in sizes)
    stock_ok = uniform and fam == "llama"  # OPT and GPT-2 derive head_dim from the head count
    if fam == "llama":
        cfg.head_dim = dense["head_dim"]
        if cfg.model_type == "llama":  # FLAP's bias compensation may have switched biases on
            first = blocks(model)[0]
            cfg.attention_bias = first.attn.o_proj.bias is not None
            cfg.mlp_bias = first.layer.mlp.down_proj.bias is not None
    if stock_ok:
        setattr(cfg, heads_f, sizes[0]["heads"])
        setattr(cfg, kv_f, sizes[0]["kv_heads"])
        setattr(cfg, inter_f, sizes[0]["intermediate"])
    else:
        for k, v in dense.items():
            setattr(cfg, k, v)
    info["stock_config_holds_sizes"] = stock_ok
    setattr(cfg, CONFIG_KEY, info)
    return info


def save_pruned(model: nn.Module, folder: str | Path, tokenizer=None) -> Path:
    """save_pretrained the pruned model (safetensors) with its per-layer sizes in config.json."""
    folder = Path(folder)
    record_sizes(model)
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def load_pruned(folder: str | Path, dtype: torch.dtype | None = None):
    """Load a model saved by `save_pruned` (or any stock checkpoint) with its own class."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder}: no config.json; give a folder written by save_pretrained / `tenfold prune run`")
    if not weights and not list(folder.glob("pytorch_model*.bin")):
        raise InputError(f"{folder}: no model weights (*.safetensors) next to config.json; "
                         "the folder holds a config only — point --model at a complete checkpoint")
    raw = json.loads((folder / "config.json").read_text())
    info = raw.get(CONFIG_KEY)
    if not info or info.get("stock_config_holds_sizes"):
        return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForCausalLM.from_config(config)
    for b, size in zip(blocks(model), info["layers"], strict=True):
        _shape_like(b, size)
    state = {}
    for f in weights:
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    model.tie_weights()
    tied = {k for k in missing if "lm_head" in k}
    if unexpected or set(missing) - tied:
        raise InputError(f"{folder}: weights do not match the recorded layer sizes "
                         f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]})")
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


def _shape_like(block: Block, size: dict) -> None:
    """Give `block` the recorded sizes (weights are overwritten by the checkpoint right after)."""
    shrink_block(block, torch.arange(size["kv_heads"]), torch.arange(size["intermediate"]))
