"""Training and evaluation of CTR models (BCE loss; AUC, LogLoss and GAUC as in the lineage code)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tenfold.core.progress import progress
from tenfold.liber.samples import CTRData

_BASE_KEYS = ("user", "item", "hist_items", "hist_ratings", "label")


@dataclass
class TextTables:
    """Encoded texts: `parts` (n_partitions, d) rows by global partition index; `kar` likewise (optional)."""

    parts: torch.Tensor | None = None
    kar: torch.Tensor | None = None


def make_batch(data: CTRData, rows: torch.Tensor, tables: TextTables) -> dict:
    batch = {k: data.tensors[k][rows] for k in _BASE_KEYS}
    slots = data.tensors["part_slots"][rows]  # (B, P), -1 = no partition
    mask = slots >= 0
    if tables.parts is not None:
        batch["part_vecs"] = tables.parts[slots.clamp_min(0)] * mask.unsqueeze(-1)
        batch["part_mask"] = mask
    if tables.kar is not None:
        batch["kar_vec"] = tables.kar[slots[:, -1].clamp_min(0)]
        batch["kar_mask"] = mask[:, -1]
    return batch


def gauc(labels: np.ndarray, scores: np.ndarray, users: np.ndarray) -> float:
    """Impression-weighted mean of per-user AUCs over users with both classes."""
    from sklearn.metrics import roc_auc_score

    total, weight = 0.0, 0
    order = np.argsort(users, kind="stable")
    labels, scores, users = labels[order], scores[order], users[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    for y, s in zip(np.split(labels, bounds), np.split(scores, bounds), strict=False):
        if 0 < y.sum() < len(y):
            total += roc_auc_score(y, s) * len(y)
            weight += len(y)
    return total / weight if weight else float("nan")


@torch.no_grad()
def evaluate(model: nn.Module, data: CTRData, tables: TextTables, split: str = "test", batch_size: int = 4096) -> dict:
    from sklearn.metrics import log_loss, roc_auc_score

    model.eval()
    rows = data.rows(split)
    probs = torch.cat([torch.sigmoid(model(make_batch(data, rows[s:s + batch_size], tables)))
                       for s in range(0, len(rows), batch_size)]).numpy().astype(np.float64)
    y = data.tensors["label"][rows].numpy()
    users = data.tensors["user"][rows].numpy()
    return {"auc": float(roc_auc_score(y, probs)), "logloss": float(log_loss(y, np.clip(probs, 1e-7, 1 - 1e-7))),
            "gauc": float(gauc(y, probs, users)), "n": int(len(rows))}


def fit(model: nn.Module, data: CTRData, tables: TextTables, epochs: int = 3, batch_size: int = 256, lr: float = 1e-3,
        seed: int = 0, patience: int = 2, desc: str = "train") -> dict:
    """Adam + BCE; keeps the epoch with the best validation AUC (early stop after `patience` bad epochs)."""
    gen = torch.Generator().manual_seed(seed)
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    rows = data.rows("train")
    best, best_state, bad, curve = -1.0, None, 0, []
    for epoch in range(epochs):
        model.train()
        order = rows[torch.randperm(len(rows), generator=gen)]
        for s in progress(range(0, len(order), batch_size), desc=f"{desc} epoch {epoch + 1}"):
            batch = make_batch(data, order[s:s + batch_size], tables)
            loss = loss_fn(model(batch), batch["label"])
            optim.zero_grad()
            loss.backward()
            optim.step()
        score = evaluate(model, data, tables, "valid")["auc"]
        curve.append(score)
        if score > best:
            best, best_state, bad = score, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"valid_auc": curve, "best_valid_auc": best, "epochs_run": len(curve)}
