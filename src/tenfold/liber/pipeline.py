"""LIBER end to end, as reusable steps: data -> UBSP -> UIL (cached) -> UIF vectors -> CTR model.

The CLI verbs and `experiment.py` both call these; they hold the wiring, the maths lives in the
partition / interests / fusion / backbones modules.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.io import atomic_write_json, load_tensors, read_json, save_tensors
from tenfold.data.movielens import AtomicDataset, load_atomic, recbole_ml100k_dir, synthetic_lifelong
from tenfold.liber.backbones import BACKBONES, FeatureEmbedding
from tenfold.liber.baselines import KARCTR, kar_summaries
from tenfold.liber.fusion import InterestFusion, LiberCTR, make_encoder
from tenfold.liber.interests import TEMPLATES, InterestRecord, learn_interests
from tenfold.liber.llm import CachedGenerator, GenerationCache, RuleSummarizer, TextGenerator
from tenfold.liber.samples import CTRData, train_partition_mask
from tenfold.liber.training import TextTables

VARIANTS = ("base", "liber", "liber-nocascade", "kar")


@dataclass(frozen=True)
class LiberConfig:
    """Every setting that changes the numbers. Embed 32 / MLP [200, 80] / adapter [128, 32]: lineage [L];
    K = 20 and 8 fused partitions: our choice [R] (the paper's K is not verified). `split`: "users"
    (the lineage's user-disjoint 9:1 setting, no user-ID feature) or "time" (per-user time split, with
    the user ID). `fields`: ask for (and fuse) the structured interest fields beside the text.
    `fusion`: "target" (target attention over the partitions) or "self+target" (self-attention across
    partitions first, as the lineage's MSA adapter [L]; twice the fusion cost)."""

    rule: str = "count:20"
    hist_len: int = 10
    max_partitions: int = 8
    text_dim: int = 32
    encoder: str = "hashing"
    embed: int = 32
    epochs: int = 5
    batch_size: int = 1024
    lr: float = 2e-3
    domain: str = "movie"
    split: str = "users"
    fields: bool = True
    fusion: str = "target"

    def __post_init__(self) -> None:
        if self.fusion not in ("target", "self+target"):
            raise InputError(f"fusion must be target or self+target, got {self.fusion!r}")

    def to_dict(self) -> dict:
        return asdict(self)


MAX_SYNTHETIC_USERS = 100_000  # ~12M generated rows: more is a typo, not an experiment


def check_data(spec: str) -> str:
    """The data spec with 'auto' resolved, checked without reading the data (for the CLI's early checks)."""
    if spec == "auto":
        spec = "ml-100k" if recbole_ml100k_dir() is not None else "synthetic"
    if spec == "synthetic" or spec.startswith("synthetic:"):
        n = spec.partition(":")[2]
        if n and not (n.isdigit() and 3 <= int(n) <= MAX_SYNTHETIC_USERS):
            raise InputError(f"--data synthetic:N needs a whole number of users from 3 to {MAX_SYNTHETIC_USERS:,}, "
                             f"got {spec!r}")
    elif spec != "ml-100k" or Path(spec).exists():
        folder = Path(spec)
        if not folder.is_dir() or len(list(folder.glob("*.inter"))) != 1:
            raise InputError(f"--data {spec}: expected ml-100k, synthetic[:N], auto or a folder holding exactly one "
                             "RecBole atomic NAME.inter file (+ NAME.item, NAME.user)")
    return spec


def load_data(spec: str = "ml-100k", seed: int = 0, synthetic_users: int = 120) -> tuple[AtomicDataset, bool]:
    """'ml-100k' (installed recbole), 'synthetic' or 'synthetic:N' (N users), 'auto' (ml-100k if installed,
    else synthetic) or a folder of atomic files (e.g. RecBole's ml-1m)."""
    spec = check_data(spec)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        n = spec.partition(":")[2]
        return synthetic_lifelong(n_users=int(n) if n else synthetic_users, seed=seed), True
    try:
        return load_atomic(spec), False
    except InputError:
        raise
    except (ValueError, TypeError, EOFError) as err:  # pandas' parser errors are ValueErrors
        raise InputError(f"--data {spec}: the atomic files could not be read ({type(err).__name__}: "
                         f"{str(err)[:120]}); expected tab-separated RecBole atomic files with name:type headers"
                         ) from err


def first_users(ds: AtomicDataset, max_users: int | None) -> AtomicDataset:
    """The first `max_users` users (by id) and their rows; all users when None (for a slow real LLM)."""
    if max_users is None:
        return ds
    if max_users < 3:
        raise InputError(f"--max-users must be at least 3, got {max_users}")
    keep = sorted(ds.inter["user_id"].astype(str).unique())[:max_users]
    inter = ds.inter[ds.inter["user_id"].astype(str).isin(keep)].reset_index(drop=True)
    return replace(ds, inter=inter, name=f"{ds.name}-first{max_users}users")


def open_generator(generator: TextGenerator, cache_path: str | os.PathLike) -> CachedGenerator:
    """The generator behind its SQLite cache; a real LLM's answers are committed one by one."""
    flush = 256 if isinstance(generator, RuleSummarizer) else 1
    return CachedGenerator(generator, GenerationCache(cache_path, generator.model_id), flush_every=flush)


def interest_records(data: CTRData, generator: TextGenerator, cascade: bool = True, domain: str = "movie",
                     fields: bool = True) -> list[InterestRecord]:
    """UIL over every closed partition; records in global partition order."""
    store = learn_interests(data.partitions, generator, data.catalog, data.profiles, TEMPLATES[domain],
                            cascade=cascade, fields=fields)
    return [r for u in data.users for r in store[u]]


def kar_records(data: CTRData, generator: TextGenerator, domain: str = "movie", fields: bool = True,
                ) -> list[InterestRecord]:
    store = kar_summaries(data.partitions, generator, data.catalog, data.profiles, TEMPLATES[domain], fields)
    return [r for u in data.users for r in store[u]]


def encode_records(data: CTRData, records: list[InterestRecord], encoder: str = "hashing", dim: int = 32,
                   seed: int = 0) -> torch.Tensor:
    """(n_partitions, dim [+ fields]): text vectors (encoder fitted on training partitions only) beside
    the structured-field vectors, when the records carry them."""
    if len(records) != data.n_partitions:
        raise InputError(f"{len(records)} interest records for {data.n_partitions} partitions")
    texts = [r.text for r in records]
    enc = make_encoder(encoder, dim, seed)
    train = [t for t, keep in zip(texts, train_partition_mask(data), strict=True) if keep]
    enc.fit(train if len(train) > dim else texts)
    table = enc.encode(texts)
    if records and records[0].fields is not None:
        genres = data.catalog.genre_names
        table = np.concatenate([table, np.stack([r.fields.vector(genres) for r in records])], axis=1)
    return torch.as_tensor(table, dtype=torch.float32)


def hide_ratings(data: CTRData) -> CTRData:
    """The same samples with the backbone's history ratings hidden (the positive control's backbone)."""
    return replace(data, tensors={**data.tensors, "hist_ratings": torch.zeros_like(data.tensors["hist_ratings"])})


def build_model(kind: str, backbone: str, data: CTRData, cfg: LiberConfig, d_in: int, seed: int = 0) -> nn.Module:
    """kind: 'base' (backbone alone), 'liber' (fused partitions), 'kar' (whole-history summary).
    The user-ID feature is used only in the per-user time split (a test user's id is never trained
    in the user-disjoint split, and KAR's samples carry none)."""
    if backbone not in BACKBONES:
        raise InputError(f"unknown backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")
    torch.manual_seed(seed)
    embed = FeatureEmbedding(len(data.users), len(data.items), data.item_genres, cfg.embed,
                             use_user=data.split_mode == "time")
    net = BACKBONES[backbone](embed, n_dense=0 if kind == "base" else 1)
    if kind == "base":
        return net
    if kind == "liber":
        return LiberCTR(net, InterestFusion(d_in, cfg.embed, cfg.embed, cfg.max_partitions,
                                            self_attention=cfg.fusion == "self+target"))
    if kind == "kar":
        return KARCTR(net, d_in)
    raise InputError(f"unknown model kind {kind!r}: base, liber or kar")


def save_model(folder: str | os.PathLike, model: nn.Module, meta: dict) -> Path:
    folder = Path(folder)
    save_tensors(folder / "model.safetensors", model.state_dict())
    atomic_write_json(folder / "model.json", meta)
    return folder


def load_model_meta(folder: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    folder = Path(folder)
    if not (folder / "model.json").is_file():
        raise InputError(f"{folder} holds no trained LIBER model (model.json): run `tenfold liber train` first")
    meta = read_json(folder / "model.json")
    if not isinstance(meta, dict) or meta.get("schema") != "tenfold.liber.model/2":
        raise SchemaError(f"{folder / 'model.json'} is not a LIBER model file of this version: retrain it")
    missing = {"config", "data", "seed", "variant", "backbone", "llm"} - set(meta)
    config = meta.get("config")
    if missing or not isinstance(config, dict) or set(config) - set(LiberConfig.__dataclass_fields__):
        raise SchemaError(f"{folder / 'model.json'} is incomplete or from another version "
                          f"(missing {', '.join(sorted(missing)) or 'nothing'}; config keys checked): retrain it")
    config.setdefault("fusion", "self+target")  # models saved before the option existed fused that way
    return meta, load_tensors(folder / "model.safetensors")


def text_tables(data: CTRData, generator: TextGenerator, cfg: LiberConfig, variants: tuple[str, ...], seed: int = 0,
                ) -> dict[str, TextTables]:
    """The encoded interest tables each model variant needs: 'base', 'liber', 'liber-nocascade', 'kar'."""
    tables: dict[str, TextTables] = {}
    for v in variants:
        if v not in VARIANTS:
            raise InputError(f"unknown variant {v!r}: {', '.join(VARIANTS)}")
        if v == "base":
            tables[v] = TextTables()
        elif v == "kar":
            records = kar_records(data, generator, cfg.domain, cfg.fields)
            tables[v] = TextTables(kar=encode_records(data, records, cfg.encoder, cfg.text_dim, seed))
        else:
            records = interest_records(data, generator, v == "liber", cfg.domain, cfg.fields)
            tables[v] = TextTables(parts=encode_records(data, records, cfg.encoder, cfg.text_dim, seed))
    return tables


def model_kind(variant: str) -> str:
    return {"base": "base", "liber": "liber", "liber-nocascade": "liber", "kar": "kar"}[variant]


def d_in_of(tables: TextTables, default: int) -> int:
    table = tables.parts if tables.parts is not None else tables.kar
    return default if table is None else int(table.shape[1])
