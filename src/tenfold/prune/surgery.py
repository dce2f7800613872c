"""Physical removal of attention heads and MLP channels from `transformers` causal LMs.

One `Block` view per decoder layer hides the family differences:
- LLaMA layout (LLaMA, Mistral, Qwen2, Qwen3 with its q/k norms, Gemma, Gemma2, Gemma3): q, k, v, o +
  gate, up, down, with an explicit `head_dim`;
- Phi-3: one fused qkv_proj ([q | k | v] rows) and one fused gate_up_proj ([gate | up] rows);
- OPT: q, k, v, out_proj + fc1, fc2;
- GPT-2: one fused Conv1D c_attn + Conv1D c_fc, c_proj.
The paper's convention is X·W with W of shape (D, D') (Sec. 3.1); `out_weight` returns the output
projection in that form whatever the storage (nn.Linear stores W^T, GPT-2's Conv1D stores W).

Attention units: with grouped-query attention one unit is a key/value group (its kv head and the
query heads that read it), so q, k, v and o share one mask as Sec. 3.1 asks; with multi-head
attention a unit is one head. Removal slices the layer's state and loads it into modules resized by
`hub_modeling` (the file saved beside every globally pruned model), so saving and loading agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.prune import hub_modeling as hub

SUPPORTED = ("LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, GemmaForCausalLM, "
             "Gemma2ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM, OPTForCausalLM, GPT2LMHeadModel")
CONFIG_KEY = hub.CONFIG_KEY  # per-layer sizes recorded in config.json
MODELING_FILE = "modeling_tenfold_pruned.py"
# families whose stock config can state one set of pruned sizes (explicit head_dim): uniform pruning
# of these loads with the stock class; everything else loads through the saved modeling file
STOCK_EXPRESSIBLE = ("llama", "phi3")


def family(model: nn.Module) -> str:
    """The layout kind ('llama', 'phi3', 'opt', 'gpt2'); UnsupportedError for anything else."""
    kind = hub.kind_of(getattr(model, "config", None))
    if kind is None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        raise UnsupportedError(f"prune supports {SUPPORTED}; got {type(model).__name__} "
                               f"(model_type={model_type!r}). Convert the model or open an issue for its family.")
    return kind


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    family(model)
    return hub.decoder_layers(model)


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
        return {"opt": lambda: self.attn.out_proj, "gpt2": lambda: self.attn.c_proj}.get(
            self.fam, lambda: self.attn.o_proj)()

    @property
    def mlp_out(self) -> nn.Module:
        return {"opt": lambda: self.layer.fc2, "gpt2": lambda: self.layer.mlp.c_proj}.get(
            self.fam, lambda: self.layer.mlp.down_proj)()

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
    def unit_width(self) -> int:
        """Input channels of the attention output projection in one unit."""
        return self.group * self.head_dim

    @property
    def n_channels(self) -> int:
        return out_weight(self.mlp_out).shape[0]

    @property
    def hidden(self) -> int:
        return out_weight(self.attn_out).shape[1]

    def unit_channels(self, unit: int) -> torch.Tensor:
        """Input channels of the attention output projection that belong to attention unit `unit`."""
        return torch.arange(unit * self.unit_width, (unit + 1) * self.unit_width)

    def unit_params(self) -> int:
        """Weights removed with one attention unit (its q, k, v rows and o columns)."""
        return self.hidden * self.head_dim * (2 * self.group + 2)

    def channel_params(self) -> int:
        """Weights removed with one MLP channel (gate/up/down, or fc1/fc2)."""
        return self.hidden * (len(self.mlp_in_weights()) + 1)

    def weights(self) -> int:
        return self.n_units * self.unit_params() + self.n_channels * self.channel_params()

    # -- weight views (rows = produced channels), for the weight-based baselines ---------------
    def qkv_weights(self, grad: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v weights as (out_features, hidden) views (or their gradients)."""
        a = self.attn
        q, kv = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        if self.fam == "gpt2":
            w = _param(a.c_attn, grad).t()
            return w[:q], w[q: 2 * q], w[2 * q:]
        if self.fam == "phi3":
            w = _param(a.qkv_proj, grad)
            return w[:q], w[q: q + kv], w[q + kv:]
        return _param(a.q_proj, grad), _param(a.k_proj, grad), _param(a.v_proj, grad)

    def mlp_in_weights(self, grad: bool = False) -> list[torch.Tensor]:
        """Every MLP input projection as (channels, hidden)."""
        if self.fam == "opt":
            return [_param(self.layer.fc1, grad)]
        mlp = self.layer.mlp
        if self.fam == "gpt2":
            return [_param(mlp.c_fc, grad).t()]
        if self.fam == "phi3":
            w = _param(mlp.gate_up_proj, grad)
            return [w[: w.shape[0] // 2], w[w.shape[0] // 2:]]
        return [_param(mlp.gate_proj, grad), _param(mlp.up_proj, grad)]

    def unit_weights(self, unit: int, grad: bool = False) -> list[torch.Tensor]:
        """The weight slices (q, k, v, o) of one attention unit (or their gradients)."""
        q_rows = self.unit_channels(unit)
        kv_rows = torch.arange(unit * self.head_dim, (unit + 1) * self.head_dim)
        q, k, v = self.qkv_weights(grad)
        return [q[q_rows], k[kv_rows], v[kv_rows], out_weight(self.attn_out, grad)[q_rows]]

    def channel_weights(self, grad: bool = False) -> list[torch.Tensor]:
        """Per-MLP-channel weights (one row per channel): every input projection and W of the output one."""
        return self.mlp_in_weights(grad) + [out_weight(self.mlp_out, grad)]


def block_of(layer: nn.Module, fam: str) -> Block:
    if fam == "gpt2":
        a = layer.attn
        hd = a.head_dim
        return Block(layer, fam, a.c_proj.weight.shape[0] // hd, a.c_proj.weight.shape[0] // hd, hd)
    a = layer.self_attn
    hd = a.head_dim
    if fam == "opt":
        n = a.q_proj.out_features // hd
        return Block(layer, fam, n, n, hd)
    if fam == "phi3":
        return Block(layer, fam, a.o_proj.in_features // hd, a.num_key_value_heads, hd)
    return Block(layer, fam, a.q_proj.out_features // hd, a.k_proj.out_features // hd, hd)


def blocks(model: nn.Module) -> list[Block]:
    fam = family(model)
    return [block_of(layer, fam) for layer in hub.decoder_layers(model)]


def _param(module: nn.Module, grad: bool) -> torch.Tensor:
    return module.weight.grad if grad else module.weight


def out_weight(module: nn.Module, grad: bool = False) -> torch.Tensor:
    """The output projection as the paper's W (input channels D, outputs D')."""
    w = _param(module, grad)
    return w if _is_conv1d(module) else w.t()


def set_out_weight(module: nn.Module, w: torch.Tensor) -> None:
    with torch.no_grad():
        module.weight.copy_(w if _is_conv1d(module) else w.t())


def _is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D"


# -- removal -------------------------------------------------------------------------------------
def _rows(idx: torch.Tensor, *offsets: int) -> torch.Tensor:
    return torch.cat([idx + o for o in offsets])


def _slice_state(layer: nn.Module, rules: dict[str, tuple[int, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The layer's state with the tensors named in `rules` kept at (dim, index) only."""
    state = {}
    for name, t in layer.state_dict().items():
        rule = rules.get(name)
        state[name] = t if rule is None else t.index_select(rule[0], rule[1].to(t.device))
    return state


def shrink_attention(block: Block, keep_units: torch.Tensor) -> None:
    """Remove every attention unit not in `keep_units` (q/k/v rows and o columns together)."""
    keep = torch.as_tensor(keep_units, dtype=torch.long).sort().values
    if len(keep) == 0:
        raise InputError("a layer must keep at least one attention head; lower the ratio")
    if len(keep) == block.n_units:
        return
    hd = block.head_dim
    q = torch.cat([block.unit_channels(int(u)) for u in keep])
    kv = torch.cat([torch.arange(int(u) * hd, (int(u) + 1) * hd) for u in keep])
    n_q, n_kv = block.n_heads * hd, block.n_kv * hd
    fam = block.fam
    if fam == "gpt2":
        rules = {"attn.c_attn.weight": (1, _rows(q, 0, n_q, 2 * n_q)), "attn.c_attn.bias": (0, _rows(q, 0, n_q, 2 * n_q)),
                 "attn.c_proj.weight": (0, q)}
    elif fam == "phi3":
        rules = {"self_attn.qkv_proj.weight": (0, torch.cat([q, n_q + kv, n_q + n_kv + kv])),
                 "self_attn.o_proj.weight": (1, q)}
    else:
        kv_rows = q if fam == "opt" else kv
        out = "out_proj" if fam == "opt" else "o_proj"
        rules = {f"self_attn.{p}.{t}": (0, q if p == "q_proj" else kv_rows)
                 for p in ("q_proj", "k_proj", "v_proj") for t in ("weight", "bias")}
        rules[f"self_attn.{out}.weight"] = (1, q)
    state = _slice_state(block.layer, rules)
    heads, kv_heads = len(q) // hd, len(keep)
    hub.resize_attention(block.layer, fam, heads, kv_heads if fam not in ("opt", "gpt2") else heads, hd)
    block.layer.load_state_dict(state)
    block.n_heads, block.n_kv = heads, (kv_heads if fam not in ("opt", "gpt2") else heads)


def shrink_mlp(block: Block, keep_channels: torch.Tensor) -> None:
    """Remove every MLP channel not in `keep_channels` (input rows and output columns together)."""
    keep = torch.as_tensor(keep_channels, dtype=torch.long).sort().values
    if len(keep) == 0:
        raise InputError("a layer must keep at least one MLP channel; lower the ratio")
    if len(keep) == block.n_channels:
        return
    fam, n = block.fam, block.n_channels
    if fam == "opt":
        rules = {"fc1.weight": (0, keep), "fc1.bias": (0, keep), "fc2.weight": (1, keep)}
    elif fam == "gpt2":
        rules = {"mlp.c_fc.weight": (1, keep), "mlp.c_fc.bias": (0, keep), "mlp.c_proj.weight": (0, keep)}
    elif fam == "phi3":
        rules = {"mlp.gate_up_proj.weight": (0, _rows(keep, 0, n)), "mlp.down_proj.weight": (1, keep)}
    else:
        rules = {f"mlp.{p}.{t}": (0, keep) for p in ("gate_proj", "up_proj") for t in ("weight", "bias")}
        rules["mlp.down_proj.weight"] = (1, keep)
    state = _slice_state(block.layer, rules)
    hub.resize_mlp(block.layer, fam, len(keep))
    block.layer.load_state_dict(state)


def shrink_block(block: Block, keep_units: torch.Tensor, keep_channels: torch.Tensor) -> None:
    """Remove every attention unit and MLP channel not listed in `keep_units` / `keep_channels`."""
    if len(keep_units) == 0 or len(keep_channels) == 0:
        raise InputError("a layer must keep at least one attention head and one MLP channel; lower the ratio")
    shrink_attention(block, keep_units)
    shrink_mlp(block, keep_channels)


def add_output_bias(block: Block, site: str, bias: torch.Tensor) -> None:
    """Add `bias` to an output projection (FLAP's bias compensation), creating the bias if absent.

    LLaMA configs can only switch biases on for a whole module (`attention_bias`, `mlp_bias`), so
    the sibling projections get zero biases too and the stock class still loads the model.
    """
    m = block.site(site)
    if m.bias is not None:
        with torch.no_grad():
            m.bias.add_(bias.to(m.bias))
        return
    if not has_bias_slot(block):
        raise UnsupportedError(f"{block.fam}: this architecture has no bias slot on its {site} output projection")
    siblings = ([block.attn.q_proj, block.attn.k_proj, block.attn.v_proj, block.attn.o_proj] if site == "attn"
                else [block.layer.mlp.gate_proj, block.layer.mlp.up_proj, block.layer.mlp.down_proj])
    for s in siblings:
        if s.bias is None:
            s.bias = nn.Parameter(torch.zeros(s.out_features, dtype=s.weight.dtype, device=s.weight.device))
    with torch.no_grad():
        m.bias.add_(bias.to(m.bias))


def has_bias_slot(block: Block) -> bool:
    """Whether FLAP's bias can be stored: OPT/GPT-2 have biases; LLaMA can switch them on by config."""
    if block.fam in ("opt", "gpt2"):
        return True
    return block.fam == "llama" and block.attn.config.model_type == "llama"


# -- config, save, load ------------------------------------------------------------------------
def layer_sizes(model: nn.Module) -> list[dict]:
    return [{"heads": b.n_heads, "kv_heads": b.n_kv, "intermediate": b.n_channels} for b in blocks(model)]


def _stock_fields(fam: str) -> tuple[str, str, str | None]:
    """(heads field, intermediate field, kv-heads field) of the stock config."""
    return {"opt": ("num_attention_heads", "ffn_dim", None),
            "gpt2": ("n_head", "n_inner", None)}.get(fam, ("num_attention_heads", "intermediate_size", "num_key_value_heads"))


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
        if fam in STOCK_EXPRESSIBLE:
            dense["head_dim"] = blocks(model)[0].head_dim
    sizes = layer_sizes(model)
    info = {"dense": dense, "layers": sizes, "info": {**prev.get("info", {}), **(extra or {})}}
    uniform = all(s == sizes[0] for s in sizes)
    stock_ok = uniform and fam in STOCK_EXPRESSIBLE  # OPT and GPT-2 derive head_dim from the head count
    if fam in STOCK_EXPRESSIBLE:
        cfg.head_dim = dense["head_dim"]
    if fam == "llama" and cfg.model_type == "llama":  # FLAP's bias compensation may have switched biases on
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


def save_pruned(model: nn.Module, folder: str | Path, tokenizer=None, source_corpus: str | None = None) -> Path:
    """save_pretrained the pruned model (safetensors) with its per-layer sizes in config.json.

    When the stock config cannot hold the sizes (different sizes per layer, or OPT/GPT-2), the folder
    also gets `modeling_tenfold_pruned.py` and an `auto_map`, so
    `AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)` loads it without tenfold.
    `source_corpus` names the text the source model was trained on, so `tenfold prune eval`
    evaluates the pruned model on the same text as its source.
    """
    folder = Path(folder)
    extra = {"source_corpus": source_corpus} if source_corpus else None
    info = record_sizes(model, extra=extra)
    cfg = model.config
    if info["stock_config_holds_sizes"]:
        if hasattr(cfg, "auto_map"):
            del cfg.auto_map
    else:
        cfg.auto_map = {"AutoModelForCausalLM": f"{MODELING_FILE[:-3]}.{hub.PRUNED[cfg.model_type].__name__}"}
    model.save_pretrained(folder, safe_serialization=True)
    if not info["stock_config_holds_sizes"]:
        (folder / MODELING_FILE).write_text(Path(hub.__file__).read_text())
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{folder}/config.json is not readable JSON ({err}); give a save_pretrained folder") from err


def load_pruned(folder: str | Path, dtype: torch.dtype | None = None, **kwargs):
    """Load a model saved by `save_pruned` (or any stock checkpoint) with its own class.

    Extra keyword arguments go to `from_pretrained` (`device_map`, `offload_folder`, ...).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder}: no config.json; give a folder written by save_pretrained / `tenfold prune run`")
    if not list(folder.glob("*.safetensors")):
        raise InputError(f"{folder}: no model weights (*.safetensors) next to config.json; "
                         "the folder holds a config only (or pickle weights, which are not loaded): "
                         "point --model at a complete safetensors checkpoint")
    info = read_config(folder).get(CONFIG_KEY)
    if not info or info.get("stock_config_holds_sizes"):
        return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, use_safetensors=True, **kwargs).eval()
    config = AutoConfig.from_pretrained(folder)
    cls = hub.PRUNED.get(config.model_type)
    if cls is None:
        raise UnsupportedError(f"{folder}: pruned model of type {config.model_type!r}; prune supports {SUPPORTED}")
    return cls.from_pretrained(folder, config=config, dtype=dtype, use_safetensors=True, **kwargs).eval()
