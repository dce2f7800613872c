"""Training and evaluation of CTR models: BCE loss through `core.accel`; AUC, LogLoss and GAUC.

The loop runs as one process by default and data-parallel under `accelerate launch`: every process
draws the same global batch order and trains on its own contiguous share (`local_slice`), so one
process reproduces the single-process numbers exactly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tenfold.core.progress import progress
from tenfold.liber.metrics import auc, gauc, logloss
from tenfold.liber.samples import CTRData

_BASE_KEYS = ("user", "item", "hist_items", "hist_ratings", "label")


@dataclass
class TextTables:
    """Encoded interests: `parts` (n_partitions, d_in) rows by global partition index; `kar` likewise."""

    parts: torch.Tensor | None = None
    kar: torch.Tensor | None = None


def make_batch(data: CTRData, rows: torch.Tensor, tables: TextTables, device: torch.device | str = "cpu") -> dict:
    batch = {k: data.tensors[k][rows].to(device) for k in _BASE_KEYS}
    slots = data.tensors["part_slots"][rows].to(device)  # (B, P), -1 = no partition
    if tables.parts is not None:
        batch["part_table"] = tables.parts.to(device)
        batch["part_slots"] = slots
    if tables.kar is not None:
        batch["kar_vec"] = tables.kar.to(device)[slots[:, -1].clamp_min(0)]
        batch["kar_mask"] = slots[:, -1] >= 0
    return batch


@torch.no_grad()
def predict(model: nn.Module, data: CTRData, tables: TextTables, split: str = "test", batch_size: int = 4096,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, labels, user indices) of one split, in sample order."""
    model.eval()
    device = next(model.parameters()).device
    rows = data.rows(split)
    probs = torch.cat([torch.sigmoid(model(make_batch(data, rows[s:s + batch_size], tables, device))).cpu()
                       for s in range(0, len(rows), batch_size)]).numpy().astype(np.float64)
    return probs, data.tensors["label"][rows].numpy(), data.tensors["user"][rows].numpy()


def evaluate(model: nn.Module, data: CTRData, tables: TextTables, split: str = "test", batch_size: int = 4096) -> dict:
    probs, y, users = predict(model, data, tables, split, batch_size)
    return {"auc": auc(y, probs), "logloss": logloss(y, probs), "gauc": gauc(y, probs, users), "n": int(len(y))}


def fit(model: nn.Module, data: CTRData, tables: TextTables, epochs: int = 3, batch_size: int = 256, lr: float = 1e-3,
        seed: int = 0, patience: int = 2, desc: str = "train") -> dict:
    """Adam + BCE; keeps the epoch with the best validation AUC (early stop after `patience` bad epochs)."""
    from tenfold.core.accel import accelerator, local_slice

    acc = accelerator()
    gen = torch.Generator().manual_seed(seed)
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    wrapped, optim = acc.prepare(model, optim)
    loss_fn = nn.BCEWithLogitsLoss()
    rows = data.rows("train")
    best, best_state, bad, curve = -1.0, None, 0, []
    for epoch in range(epochs):
        wrapped.train()
        order = rows[torch.randperm(len(rows), generator=gen)]
        for s in progress(range(0, len(order), batch_size), desc=f"{desc} epoch {epoch + 1}"):
            chunk = order[s:s + batch_size]
            chunk = chunk[:len(chunk) - len(chunk) % acc.num_processes]  # equal shares (no-op for one process)
            batch = make_batch(data, local_slice(chunk, acc), tables, acc.device)
            loss = loss_fn(wrapped(batch), batch["label"])
            acc.backward(loss)
            optim.step()
            optim.zero_grad()
        probs, y, _ = predict(model, data, tables, "valid")
        score = auc(y, probs)
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
