"""One training and scoring loop for RELIFE and every baseline: the same data, target, batches,
optimiser, width, epoch budget and early stopping on a validation split.

The loop runs on `tenfold.core.accel` (device, --mixed-precision, data-parallel under `accelerate
launch`); one process gives the same batches and numbers as a plain loop. Each epoch ends with a
checkpoint, so a killed run resumes at its last finished epoch and ends with the same weights.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.io import Checkpoint, atomic_write_json, load_tensors, read_json, save_tensors
from tenfold.core.progress import progress
from tenfold.data.lists import ListData, ListSplits
from tenfold.relife.baselines import BASELINES, PRM, BaselineConfig, PersonalVector
from tenfold.relife.model import MAX_DIM, Relife, RelifeConfig, pointwise_loss

ABLATIONS = {"relife-no-history": {"use_history": False}, "relife-clicks-only": {"hybrid": False},
             "relife-no-cpe": {"use_cpe": False}, "relife-no-cl": {"cl_weight": 0.0}}
MODELS = ("initial", "dlcm", "prm", "setrank", "mir", "relife", *ABLATIONS)
SIGNALS = ("ips", "intent", "labels")
MAX_EPOCHS, MAX_BATCH = 10_000, 1_000_000


@dataclass(frozen=True)
class TrainConfig:
    """Adam, gradient clipping 5 (MIR's setting), early stopping on the validation objective.

    The lineage uses lr 1e-4..1e-3 and batch 32..2048 (note 1.6, 2.4); our lists are few, so a larger lr.
    """

    max_epochs: int = 8
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-5
    patience: int = 2
    min_propensity: float = 0.05  # IPS weights clipped at 1 / 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if not (1 <= self.max_epochs <= MAX_EPOCHS and 1 <= self.batch_size <= MAX_BATCH and 1 <= self.patience <= MAX_EPOCHS):
            raise InputError(f"max_epochs and patience must be from 1 to {MAX_EPOCHS} and batch_size from 1 to "
                             f"{MAX_BATCH}, got {self.max_epochs}, {self.patience}, {self.batch_size}")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 10):
            raise InputError(f"lr must be a number in (0, 10], got {self.lr}")
        if not (math.isfinite(self.weight_decay) and 0 <= self.weight_decay <= 10):
            raise InputError(f"weight_decay must be a number in [0, 10], got {self.weight_decay}")
        if not (math.isfinite(self.min_propensity) and 0 < self.min_propensity <= 1):
            raise InputError(f"min_propensity must be in (0, 1], got {self.min_propensity}")


def targets(data: ListData, signal: str, min_propensity: float = 0.05) -> np.ndarray:
    """The training target (N, L) of each candidate.

    ips: logged click / known examination propensity (clipped), unbiased for the intent r' (simulator);
    intent: the simulator's intent probability r' of each displayed item (position-free, but with the
    displayed list's substitution context); labels: logged labels as they are
    (ratings have no display position, propensity 1).
    """
    if signal not in SIGNALS:
        raise InputError(f"unknown training signal {signal!r}: choose one of {', '.join(SIGNALS)}")
    simulated = data.meta.get("regime") == "simulated"
    if signal != "labels" and not simulated:
        raise InputError(f"signal {signal!r} needs simulated lists (propensities and intents); logged lists train on 'labels'")
    if signal == "ips":
        return data.labels / np.maximum(data.propensity, min_propensity)
    return data.intent if signal == "intent" else data.labels


def build_model(name: str, meta: dict, list_len: int, history_lists: int, dim: int = 16, heads: int = 1,
                contrastive: str = "user", cl_weight: float = 0.01) -> nn.Module:
    """A named model (one of MODELS) sized for lists described by `meta` (vocabulary sizes)."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    if not (1 <= dim <= MAX_DIM and 1 <= heads <= dim and dim % heads == 0):
        raise InputError(f"dim ({dim}) must be a multiple of heads ({heads}) from 1 to {MAX_DIM}")
    if name in BASELINES:
        return BASELINES[name](BaselineConfig(meta["n_items"], meta["n_cats"], list_len, history_lists, dim, heads))
    cfg = RelifeConfig(n_items=meta["n_items"], n_cats=meta["n_cats"], list_len=list_len, history_lists=history_lists,
                       dim=dim, heads=heads, contrastive=contrastive, cl_weight=cl_weight)
    return Relife(replace(cfg, **ABLATIONS.get(name, {})))


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def objective(model: nn.Module, data: ListData, target: np.ndarray, batch_size: int = 1024) -> float:
    """The pointwise objective over all real candidates of `data` (the validation criterion)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        batch = _to(data.batch(np.arange(start, min(start + batch_size, len(data))), target), device)
        logits, _ = model(batch)
        n = int(batch["mask"].sum())
        total += float(pointwise_loss(logits.float(), batch["target"], batch["mask"])) * n
        count += n
    return total / max(count, 1)


def fit(model: nn.Module, train: ListData, val: ListData, cfg: TrainConfig, signal: str,
        checkpoint: Checkpoint | None = None, desc: str = "") -> dict:
    """Train in place with early stopping on `val`; the best epoch's weights are kept.

    Returns {"loss": train loss per epoch, "val": validation objective per epoch, "best_epoch": k}.
    """
    from tenfold.core.accel import accelerator, local_slice

    if not getattr(model, "trainable", True):
        return {"loss": [], "val": [], "best_epoch": 0}
    if len(train) == 0 or len(val) == 0:
        raise InputError("training needs non-empty training and validation lists: build lists with more users or lists")
    y_train, y_val = targets(train, signal, cfg.min_propensity), targets(val, signal, cfg.min_propensity)
    acc = accelerator()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    model, opt = acc.prepare(model, opt)
    net = acc.unwrap_model(model)
    state = checkpoint.load() if checkpoint is not None else None
    if state:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        best_state = state["best_state"]
    else:
        state = {"epoch": 0, "best": float("inf"), "bad": 0, "loss": [], "val": [], "best_epoch": 0}
        best_state = copy.deepcopy(net.state_dict())
    for epoch in progress(range(state["epoch"], cfg.max_epochs), desc=desc or f"train {type(net).__name__}"):
        if state["bad"] >= cfg.patience:
            break
        model.train()
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train))
        total, seen = 0.0, 0
        for start in range(0, len(train), cfg.batch_size):
            idx = order[start: start + cfg.batch_size]
            idx = local_slice(idx[: len(idx) - len(idx) % acc.num_processes], acc)
            if len(idx) == 0:
                continue
            batch = _to(train.batch(idx, y_train), acc.device)
            logits, extra = model(batch)
            loss = pointwise_loss(logits.float(), batch["target"], batch["mask"]) + extra
            acc.backward(loss)
            acc.clip_grad_norm_(params, 5.0)
            opt.step()
            opt.zero_grad()
            total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
        val_loss = objective(net, val, y_val)
        state["loss"].append(total / max(seen, 1))
        state["val"].append(val_loss)
        if val_loss < state["best"] - 1e-6:
            state.update(best=val_loss, bad=0, best_epoch=epoch + 1)
            best_state = copy.deepcopy(net.state_dict())
        else:
            state["bad"] += 1
        state["epoch"] = epoch + 1
        if checkpoint is not None:
            checkpoint.save({**state, "model": net.state_dict(), "optimizer": opt.state_dict(), "best_state": best_state})
    net.load_state_dict(best_state)
    return {"loss": state["loss"], "val": state["val"], "best_epoch": state["best_epoch"]}


def train_model(name: str, splits: ListSplits, cfg: TrainConfig, signal: str, dim: int = 16, heads: int = 1,
                contrastive: str = "user", cl_weight: float = 0.01, folder: str | Path | None = None) -> tuple[nn.Module, dict]:
    """Build and train `name` on `splits` (PRM: first its personalisation model, then PRM on top).

    With `folder`, every stage checkpoints there each epoch and a rerun resumes; returns (model, history).
    """
    train, val = splits.train, splits.val
    L, H = train.mask.shape[1], train.hist_mask.shape[1]
    ckpt = (lambda stage: Checkpoint(folder, f"checkpoint-{stage}")) if folder is not None else (lambda stage: None)
    if name == "prm":
        config = BaselineConfig(train.meta["n_items"], train.meta["n_cats"], L, H, dim, heads)
        personal = PersonalVector(config)
        pre = fit(personal, train, val, cfg, signal, ckpt("personal"), desc="pre-train PRM's personal vector")
        model = PRM(config, personal)
        return model, {**fit(model, train, val, cfg, signal, ckpt("model"), desc="train PRM"), "pretrain": pre}
    model = build_model(name, train.meta, L, H, dim=dim, heads=heads, contrastive=contrastive, cl_weight=cl_weight)
    return model, fit(model, train, val, cfg, signal, ckpt("model"), desc=f"train {name}")


@torch.no_grad()
def predict(model: nn.Module, data: ListData, batch_size: int = 1024) -> np.ndarray:
    """Scores (N, L) for every list; padded positions get -inf."""
    model.eval()
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    out = []
    for start in range(0, len(data), batch_size):
        logits, _ = model(_to(data.batch(np.arange(start, min(start + batch_size, len(data)))), device))
        out.append(logits.float().cpu().numpy())
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
                            heads=spec.get("heads", 1), contrastive=spec.get("contrastive", "user"),
                            cl_weight=spec.get("cl_weight", 0.01))
    except (KeyError, TypeError) as err:
        raise SchemaError(f"{folder / 'model.json'} lacks {err}: retrain the model") from err
    if (folder / "model.safetensors").is_file():
        try:
            model.load_state_dict(load_tensors(folder / "model.safetensors"))
        except RuntimeError as err:
            raise SchemaError(f"{folder / 'model.safetensors'} does not match {spec['name']}'s shapes: retrain the model") from err
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
