"""LIBER end to end, as reusable steps: data -> UBSP -> UIL (cached) -> UIF vectors -> CTR model.

The CLI verbs and `experiment.py` both call these; they hold the wiring, the maths lives in the
partition / interests / fusion / backbones modules.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.io import atomic_write_json, load_tensors, read_json, save_tensors
from tenfold.data.movielens import AtomicDataset, load_atomic, recbole_ml100k_dir, synthetic_lifelong
from tenfold.liber.backbones import BACKBONES, FeatureEmbedding
from tenfold.liber.baselines import KARCTR, kar_recompute_prompt, kar_summaries
from tenfold.liber.fusion import InterestFusion, LiberCTR, make_encoder
from tenfold.liber.interests import TEMPLATES, learn_interests
from tenfold.liber.llm import CachedGenerator, GenerationCache, TextGenerator
from tenfold.liber.partition import StreamingPartitioner, parse_rule
from tenfold.liber.samples import CTRData, train_partition_mask
from tenfold.liber.training import TextTables


@dataclass(frozen=True)
class LiberConfig:
    """Every setting that changes the numbers. Embed 32 / MLP [200, 80] / adapter [128, 32]: lineage [L];
    K = 20 and 8 fused partitions: our choice [R] (the paper's K is not verified)."""

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

    def to_dict(self) -> dict:
        return asdict(self)


def load_data(spec: str = "ml-100k", seed: int = 0, synthetic_users: int = 120) -> tuple[AtomicDataset, bool]:
    """'ml-100k' (installed recbole), 'synthetic' or 'synthetic:N' (N users), 'auto' (ml-100k if installed,
    else synthetic) or a folder of atomic files."""
    if spec == "auto":
        spec = "ml-100k" if recbole_ml100k_dir() is not None else "synthetic"
    if spec == "synthetic" or spec.startswith("synthetic:"):
        n = spec.partition(":")[2]
        if n and not n.isdigit():
            raise InputError(f"--data synthetic:N needs a whole number of users, got {spec!r}")
        return synthetic_lifelong(n_users=int(n) if n else synthetic_users, seed=seed), True
    return load_atomic(spec), False


def open_generator(generator: TextGenerator, cache_path: str | os.PathLike) -> CachedGenerator:
    return CachedGenerator(generator, GenerationCache(cache_path, generator.model_id))


def interest_texts(data: CTRData, generator: TextGenerator, cascade: bool = True, domain: str = "movie") -> list[str]:
    """UIL over every closed partition; texts in global partition order."""
    store = learn_interests(data.partitions, generator, data.catalog, data.profiles, TEMPLATES[domain], cascade=cascade)
    return [r.text for u in data.users for r in store[u]]


def kar_texts(data: CTRData, generator: TextGenerator, domain: str = "movie") -> list[str]:
    texts = kar_summaries(data.partitions, generator, data.catalog, data.profiles, TEMPLATES[domain])
    return [t for u in data.users for t in texts[u]]


def encode_texts(data: CTRData, texts: list[str], encoder: str = "hashing", dim: int = 32, seed: int = 0) -> torch.Tensor:
    """Encode per-partition texts; the encoder is fitted on training-period partitions only."""
    if len(texts) != data.n_partitions:
        raise InputError(f"{len(texts)} texts for {data.n_partitions} partitions")
    enc = make_encoder(encoder, dim, seed)
    train = [t for t, keep in zip(texts, train_partition_mask(data), strict=False) if keep]
    enc.fit(train or texts)
    return torch.as_tensor(enc.encode(texts))


def build_model(kind: str, backbone: str, data: CTRData, cfg: LiberConfig, d_text: int, seed: int = 0) -> nn.Module:
    """kind: 'base' (backbone alone), 'liber' (fused partitions), 'kar' (whole-history summary)."""
    if backbone not in BACKBONES:
        raise InputError(f"unknown backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")
    torch.manual_seed(seed)
    embed = FeatureEmbedding(len(data.users), len(data.items), data.item_genres, cfg.embed)
    net = BACKBONES[backbone](embed, n_dense=0 if kind == "base" else 1)
    if kind == "base":
        return net
    if kind == "liber":
        return LiberCTR(net, InterestFusion(d_text, cfg.embed, cfg.embed, cfg.max_partitions))
    if kind == "kar":
        return KARCTR(net, d_text)
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
    if meta.get("schema") != "tenfold.liber.model/1":
        raise SchemaError(f"{folder / 'model.json'} is not a LIBER model file")
    return meta, load_tensors(folder / "model.safetensors")


def weekly_update_calls(data: CTRData, generator_factory, rule: str, week: float = 7 * 86400.0,
                        domain: str = "movie") -> dict:
    """LLM calls to absorb the last `week` of behaviour for all users, counted through fresh caches:

    * LIBER: summaries (+ shift texts) of the partitions that close during the week, nothing else;
    * KAR-style: the whole-history summary is stale after every new behaviour, so one recompute per
      new behaviour (the paper's "recurrent calls upon each update"); also reported: a lazier KAR
      that recomputes once per active user at the end of the week.
    Prompt characters are reported too: LIBER's prompts are bounded by the partition size, KAR's grow.
    """
    end = float(data.tensors["time"].max())
    cut = end - week
    before, after = StreamingPartitioner(parse_rule(rule)), StreamingPartitioner(parse_rule(rule))
    histories = data.histories
    for user in data.users:
        before.extend(user, [b for b in histories[user] if b.timestamp <= cut])
        after.extend(user, histories[user])
    template = TEMPLATES[domain]
    liber = generator_factory()
    parts_before = {u: before.partitions(u) for u in data.users}
    known = learn_interests(parts_before, liber, data.catalog, data.profiles, template)
    liber.calls, liber.prompt_chars = 0, 0
    learn_interests({u: after.partitions(u) for u in data.users}, liber, data.catalog, data.profiles, template, known=known)
    per_event, per_user = [], []
    for user in data.users:
        h = histories[user]
        new = [j for j, b in enumerate(h) if b.timestamp > cut]
        per_event += [kar_recompute_prompt(user, h[:j + 1], data.catalog, data.profiles.get(user, ""), template) for j in new]
        if new:
            per_user.append(per_event[-1])
    kar = generator_factory()
    kar.generate(per_event)
    return {"liber": liber.calls, "kar": kar.calls, "kar_once_per_user": len(per_user),
            "liber_prompt_chars": liber.prompt_chars, "kar_prompt_chars": kar.prompt_chars,
            "kar_once_per_user_prompt_chars": sum(len(p) for p in per_user),
            "users_with_new_behaviour": len(per_user), "new_behaviours": len(per_event),
            "new_partitions": sum(len(after.partitions(u)) - len(parts_before[u]) for u in data.users),
            "week_start": cut, "week_end": end}


def text_tables(data: CTRData, generator: TextGenerator, cfg: LiberConfig, variants: tuple[str, ...], seed: int = 0,
                ) -> dict[str, TextTables]:
    """The encoded text tables each model variant needs: 'base', 'liber', 'liber-nocascade', 'kar'."""
    tables: dict[str, TextTables] = {}
    for v in variants:
        if v == "base":
            tables[v] = TextTables()
        elif v == "liber":
            tables[v] = TextTables(parts=encode_texts(data, interest_texts(data, generator, True, cfg.domain),
                                                      cfg.encoder, cfg.text_dim, seed))
        elif v == "liber-nocascade":
            tables[v] = TextTables(parts=encode_texts(data, interest_texts(data, generator, False, cfg.domain),
                                                      cfg.encoder, cfg.text_dim, seed))
        elif v == "kar":
            tables[v] = TextTables(kar=encode_texts(data, kar_texts(data, generator, cfg.domain), cfg.encoder,
                                                    cfg.text_dim, seed))
        else:
            raise InputError(f"unknown variant {v!r}: base, liber, liber-nocascade or kar")
    return tables


def model_kind(variant: str) -> str:
    return {"base": "base", "liber": "liber", "liber-nocascade": "liber", "kar": "kar"}[variant]


def d_text_of(tables: TextTables, default: int) -> int:
    table = tables.parts if tables.parts is not None else tables.kar
    return default if table is None else int(table.shape[1])
