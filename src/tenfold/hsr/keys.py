"""Real keys: post-RoPE queries, keys and values of a LLaMA-class model's KV cache over long real text,
per (layer, head), dumped to safetensors; and the participation ratio that says how many dimensions
a key set really uses.

The dump runs the model itself (its own SDPA attention) over the text in chunks through its KV cache
and records what each layer's attention receives: q and k after RoPE, v. Positions past the model's
training context are computed as Hugging Face computes them (RoPE angles position * theta^(-2i/d), no
rescaling unless the model's config asks for one); the dump records the context the model was trained
on, so a reader knows which part of the cache is extrapolation.

Dump layout (all float32): queries (layers, heads, n, d), keys and values (layers, kv_heads, n, d);
metadata: model, model_type, text, tokens, training_context, rope.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from tenfold.core.errors import InputError
from tenfold.hsr.cache import check_family

PROBE = "tenfold_keys_probe"


def participation_ratio(X: torch.Tensor) -> float:
    """(sum l)^2 / sum l^2 over the eigenvalues l of the covariance of the rows of X (n, d): about the
    number of directions the points spread over (d for isotropic data, 1 for data on a line)."""
    X = X.double()
    if len(X) < 2:
        return float("nan")
    lam = torch.linalg.eigvalsh(torch.cov(X.T).reshape(X.shape[1], X.shape[1])).clamp(min=0)
    return float(lam.sum() ** 2 / (lam**2).sum()) if float((lam**2).sum()) > 0 else float("nan")


@dataclass
class KeyDump:
    """What `dump_keys` records; `groups` query heads share each kv head (grouped-query attention)."""

    queries: torch.Tensor  # (layers, heads, n, d)
    keys: torch.Tensor  # (layers, kv_heads, n, d)
    values: torch.Tensor  # (layers, kv_heads, n, d)
    metadata: dict

    @property
    def groups(self) -> int:
        return self.queries.shape[1] // self.keys.shape[1]

    @property
    def n(self) -> int:
        return self.keys.shape[2]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"queries": self.queries, "keys": self.keys, "values": self.values}


def check_dump(tensors: dict, source: str = "key dump") -> None:
    """One-line InputError unless the tensors form a consistent dump (names, shapes, dtypes)."""
    missing = {"queries", "keys", "values"} - set(tensors)
    if missing:
        raise InputError(f"{source} lacks tensors {sorted(missing)} (found {sorted(tensors)}): write it with "
                         "`tenfold hsr dump-keys`")
    q, k, v = tensors["queries"], tensors["keys"], tensors["values"]
    if any(t.dim() != 4 for t in (q, k, v)):
        raise InputError(f"{source}: queries, keys and values must be 4-D (layers, heads, n, d), got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if len({t.dtype for t in (q, k, v)}) != 1 or q.dtype not in (torch.float32, torch.float64):
        raise InputError(f"{source}: queries, keys and values must share one dtype, float32 or float64; got "
                         f"{q.dtype}, {k.dtype}, {v.dtype}")
    if k.shape != v.shape or q.shape[0] != k.shape[0] or q.shape[2:] != k.shape[2:]:
        raise InputError(f"{source}: mismatched shapes: queries {tuple(q.shape)}, keys {tuple(k.shape)}, values "
                         f"{tuple(v.shape)} (same layers, positions and head dim; values like keys)")
    if k.shape[1] == 0 or q.shape[1] % k.shape[1]:
        raise InputError(f"{source}: {q.shape[1]} query heads do not split evenly over {k.shape[1]} kv heads")
    if k.shape[2] < 2:
        raise InputError(f"{source}: holds {k.shape[2]} positions; at least 2 are needed")


def load_dump(path: str | os.PathLike) -> KeyDump:
    """Read and check a dump written by `dump_keys` / `tenfold hsr dump-keys`."""
    from safetensors import safe_open

    from tenfold.core.io import load_tensors

    path = Path(path)
    tensors = load_tensors(path)
    check_dump(tensors, str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return KeyDump(tensors["queries"], tensors["keys"], tensors["values"], json.loads(meta.get("tenfold", "{}")))


def save_dump(dump: KeyDump, path: str | os.PathLike) -> Path:
    from tenfold.core.io import save_tensors

    return save_tensors(path, dump.tensors(), metadata={"tenfold": json.dumps(dump.metadata)})


def load_model(name_or_path: str):
    """(model, tokenizer, training context or None, label) from a zoo name (tiny-lm, tiny-lm-long) or a
    Hugging Face folder; refuses models that are not LLaMA-class."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tenfold.zoo.registry import all_models, zoo_path

    zoo = {m.name for m in all_models()}
    folder = zoo_path(name_or_path) if name_or_path in zoo else Path(name_or_path)
    if not (folder / "config.json").is_file():
        raise InputError(f"{name_or_path} is neither a zoo model ({', '.join(sorted(zoo))}) nor a Hugging Face "
                         "model folder with a config.json")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder)
        tok = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"cannot load a causal LM from {folder}: {str(err).splitlines()[0][:200]}") from err
    check_family(model)
    info = folder / "zoo.json"
    context = json.loads(info.read_text()).get("training_context") if info.is_file() else None
    return model.eval(), tok, context, name_or_path


def text_tokens(tok, text: str | os.PathLike, n: int) -> tuple[torch.Tensor, str]:
    """(the first n token ids, a label) of `text`: 'python-docs' / 'python-topics' (their validation
    split, documents the zoo models never trained on, joined with EOS) or a UTF-8 text file."""
    from tenfold.data.text import load_corpus

    if n < 2:
        raise InputError(f"--tokens must be at least 2, got {n}")
    if str(text) in ("python-docs", "python-topics"):
        corpus = load_corpus(str(text))
        docs, label = corpus.valid, f"{corpus.name} validation split"
    else:
        path = Path(text)
        if not path.is_file():
            raise InputError(f"text file {path} does not exist: give a UTF-8 text file or python-docs")
        try:
            docs, label = [path.read_text(encoding="utf-8")], str(path)
        except UnicodeDecodeError as err:
            raise InputError(f"{path} is not UTF-8 text (byte {err.start}): convert it with iconv first") from err
    ids: list[int] = []
    eos = tok.eos_token_id
    for d in docs:
        ids += tok(d, add_special_tokens=False)["input_ids"]
        if eos is not None:
            ids.append(eos)
        if len(ids) >= n:
            break
    if len(ids) < n:
        raise InputError(f"{label} holds {len(ids):,} tokens, fewer than the {n:,} asked for: give a longer text or "
                         "fewer --tokens")
    return torch.tensor(ids[:n]), label


def _probe(records: dict):
    """An attention implementation that records q, k, v (post-RoPE) and runs the model's SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    def probe(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        qlen = query.shape[2]
        records.setdefault(module.layer_idx, []).append(
            (query[0].detach().float(), key[0, :, -qlen:].detach().float(), value[0, :, -qlen:].detach().float()))
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)

    return probe


@torch.no_grad()
def dump_keys(model, ids: torch.Tensor, chunk: int = 1024, metadata: dict | None = None) -> KeyDump:
    """Run `model` over `ids` (n,) in chunks through its KV cache and record every layer's post-RoPE q, k, v."""
    from transformers import AttentionInterface, DynamicCache
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from tenfold.core.progress import progress

    check_family(model)
    records: dict[int, list] = {}
    AttentionInterface.register(PROBE, _probe(records))
    AttentionMaskInterface.register(PROBE, sdpa_mask)
    previous = model.config._attn_implementation
    model.config._attn_implementation = PROBE
    try:
        cache = DynamicCache(config=model.config)
        for start in progress(range(0, len(ids), chunk), desc="hsr dump-keys", total=math.ceil(len(ids) / chunk)):
            model(input_ids=ids[None, start:start + chunk], cache=cache, use_cache=True)
    finally:
        model.config._attn_implementation = previous
    layers = sorted(records)
    stack = [torch.stack([torch.cat([r[j] for r in records[li]], 1) for li in layers]) for j in range(3)]
    cfg = model.config
    meta = {"model_type": cfg.model_type, "tokens": int(len(ids)), "layers": len(layers),
            "max_position_embeddings": getattr(cfg, "max_position_embeddings", None),
            "rope": str(getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None)), **(metadata or {})}
    return KeyDump(*stack, meta)
