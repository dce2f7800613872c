"""One training and scoring loop for RELIFE and every baseline (same data, batches, optimiser, epochs)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.io import atomic_write_json, load_tensors, read_json, save_tensors
from tenfold.core.progress import progress
from tenfold.data.lists import ListData
from tenfold.relife.baselines import BASELINES, BaselineConfig
from tenfold.relife.model import Relife, RelifeConfig

MODELS = ("initial", "dlcm", "prm", "setrank", "mir", "relife", "relife-no-cpe", "relife-no-dim", "relife-no-cl")


@dataclass(frozen=True)
class TrainConfig:
    """Adam with L2, pointwise BCE; the lineage uses lr 1e-4..1e-3 and batch 32..2048 (note 1.6, 2.4)."""

    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise InputError(f"epochs, batch_size and lr must be positive, got {self.epochs}, {self.batch_size}, {self.lr}")


def build_model(name: str, meta: dict, list_len: int, history_lists: int, dim: int = 32, heads: int = 2,
                contrastive: str = "user", cl_weight: float = 0.1) -> nn.Module:
    """A named model (one of MODELS) sized for lists described by `meta` (vocabulary sizes)."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    if name in BASELINES:
        return BASELINES[name](BaselineConfig(meta["n_items"], meta["n_cats"], list_len, dim, heads))
    switches = {"relife-no-cpe": {"use_cpe": False}, "relife-no-dim": {"use_dim": False},
                "relife-no-cl": {"cl_weight": 0.0}}.get(name, {})
    cfg = RelifeConfig(n_items=meta["n_items"], n_cats=meta["n_cats"], list_len=list_len, history_lists=history_lists,
                       dim=dim, heads=heads, contrastive=contrastive, cl_weight=cl_weight)
    return Relife(replace(cfg, **switches))


def fit(model: nn.Module, data: ListData, cfg: TrainConfig = TrainConfig()) -> dict:
    """Train in place; returns the mean loss of each epoch."""
    if not getattr(model, "trainable", True):
        return {"loss": []}
    if len(data) == 0:
        raise InputError("no training lists: build lists with more users or history")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    losses = []
    model.train()
    for _ in progress(range(cfg.epochs), desc=f"train {type(model).__name__}"):
        order, total = rng.permutation(len(data)), 0.0
        for start in range(0, len(data), cfg.batch_size):
            batch = data.tensors(order[start: start + cfg.batch_size])
            loss = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # max_norm 5 as in MIR's setting
            opt.step()
            total += loss.item() * len(batch["user"])
        losses.append(total / len(data))
    return {"loss": losses}


@torch.no_grad()
def predict(model: nn.Module, data: ListData, batch_size: int = 512) -> np.ndarray:
    """Scores (N, L) for every list; padded positions get -inf."""
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        batch = data.tensors(np.arange(start, min(start + batch_size, len(data))))
        out.append(model(batch).float().numpy())
    scores = np.concatenate(out) if out else np.zeros(data.mask.shape, dtype=np.float32)
    return np.where(data.mask, scores, -np.inf)


def save_model(model: nn.Module, folder: str | Path, spec: dict) -> Path:
    """Weights as safetensors plus `model.json` holding `spec` (the build_model arguments)."""
    folder = Path(folder)
    save_tensors(folder / "model.safetensors", model.state_dict())
    atomic_write_json(folder / "model.json", spec)
    return folder


def load_model(folder: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild a model saved by `save_model`; returns (model, spec)."""
    folder = Path(folder)
    if not (folder / "model.json").is_file():
        raise InputError(f"{folder} holds no model.json: train one with `tenfold relife train --out {folder}`")
    spec = read_json(folder / "model.json")
    try:
        model = build_model(spec["name"], spec["meta"], spec["list_len"], spec["history_lists"], dim=spec["dim"],
                            contrastive=spec.get("contrastive", "user"), cl_weight=spec.get("cl_weight", 0.1))
    except KeyError as err:
        raise SchemaError(f"{folder / 'model.json'} lacks {err}: retrain the model") from err
    if (folder / "model.safetensors").is_file():
        model.load_state_dict(load_tensors(folder / "model.safetensors"))
    return model, spec


def check_compatible(spec: dict, data: ListData) -> None:
    """Reject lists whose shape or vocabulary differs from what the model was trained on."""
    L, H = data.mask.shape[1], data.hist_mask.shape[1]
    if (L, H) != (spec["list_len"], spec["history_lists"]):
        raise InputError(f"the lists have list_len={L}, history_lists={H} but the model was trained with "
                         f"list_len={spec['list_len']}, history_lists={spec['history_lists']}: rebuild the lists to match")
    if data.items.max(initial=0) >= spec["meta"]["n_items"] or data.cats.max(initial=0) >= spec["meta"]["n_cats"]:
        raise InputError("the lists use item or genre ids beyond the model's vocabulary: evaluate on lists built "
                         "together with the model's training lists (same build-lists/simulate call)")
