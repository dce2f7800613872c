"""CTR samples from atomic interactions, with the long-term partitions each sample may see.

Every interaction is one sample (label: rating >= 4). A sample at time t sees the last `hist_len`
behaviors before it in the user's sequence (the short-term input of the backbone) and only the
partitions closed strictly before t (LIBER's leakage rule; the lineage code uses "blocks completed
before the target's block"). So a test user's history is only ever used up to each sample's time.

Two splits (`split=`):
* "users": the lineage's setting (KAR's preprocessing): users shuffled and split into disjoint
  train / valid / test groups (81 / 9 / 10 by default: KAR's 9:1, with a tenth of the training users
  held out for early stopping); the backbone then takes no user-ID feature.
* "time": per user in time order, the first 80% train, then 10% valid, the last 10% test.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from tenfold.core.errors import InputError
from tenfold.data.movielens import AtomicDataset, click_labels, time_split, user_split
from tenfold.liber.interests import ItemCatalog, profile_sentence
from tenfold.liber.partition import Behavior, Partition, PartitionRule, partition_history

SPLITS = {"train": 0, "valid": 1, "test": 2}
SPLIT_MODES = ("users", "time")


@dataclass
class CTRData:
    """Sample tensors plus the partitions they index into.

    `tensors`: user, item, label, split (0/1/2), time, hist_items (N, L), hist_ratings (N, L),
    part_slots (N, P): global partition index (row of `part_owner`) or -1; right-aligned, newest last.
    `split_mode` is "users" (user-disjoint) or "time" (per-user time split).
    """

    tensors: dict[str, torch.Tensor]
    partitions: dict[str, list[Partition]]
    histories: dict[str, list[Behavior]]
    part_offset: dict[str, int]
    item_genres: torch.Tensor
    users: list[str]
    items: list[str]
    catalog: ItemCatalog
    profiles: dict[str, str]
    split_mode: str = "time"

    @property
    def n_partitions(self) -> int:
        return sum(len(p) for p in self.partitions.values())

    def rows(self, split: str) -> torch.Tensor:
        return torch.nonzero(self.tensors["split"] == SPLITS[split]).squeeze(1)


def build_ctr_data(ds: AtomicDataset, rule: PartitionRule, hist_len: int = 10, max_partitions: int = 8,
                   valid: float = 0.1, test: float = 0.1, threshold: float = 4.0, split: str = "time",
                   seed: int = 0) -> CTRData:
    """Samples, partitions and a split (`with_split`); `seed` shuffles the users of the "users" split."""
    if split not in SPLIT_MODES:
        raise InputError(f"split must be one of {', '.join(SPLIT_MODES)}, got {split!r}")
    inter = ds.inter
    if len(inter) == 0:
        raise InputError(f"dataset {ds.name} has no interactions")
    if "rating" not in inter.columns:
        raise InputError(f"dataset {ds.name} has no rating column: LIBER's CTR label is rating >= {threshold}")
    catalog = ItemCatalog.from_frame(ds.item)
    users = sorted(inter["user_id"].astype(str).unique())
    items = sorted(catalog.genres)
    item_index = {it: i + 1 for i, it in enumerate(items)}
    genre_names = sorted({g for gs in catalog.genres.values() for g in gs})
    genre_index = {g: i for i, g in enumerate(genre_names)}
    item_genres = torch.zeros(len(items) + 1, len(genre_names))
    for it, gs in catalog.genres.items():
        item_genres[item_index[it], [genre_index[g] for g in gs]] = 1.0
    labels = click_labels(inter, threshold)
    age_groups = ds.name.startswith("ml-1m")
    user_table = ds.user.set_index(ds.user["user_id"].astype(str)) if ds.user is not None else None
    cols = {k: [] for k in ("user", "item", "label", "time", "hist_items", "hist_ratings", "part_slots")}
    partitions, histories, offsets, profiles, offset = {}, {}, {}, {}, 0
    for u_idx, (user, rows) in enumerate(inter.groupby(inter["user_id"].astype(str), sort=True)):
        pos = rows.index.to_numpy()
        behaviors = catalog.behaviors(rows["item_id"], rows["timestamp"], rows["rating"])
        parts, _ = partition_history(behaviors, rule)
        partitions[user], histories[user], offsets[user] = parts, behaviors, offset
        profiles[user] = profile_sentence(user_table.loc[user] if user_table is not None and user in user_table.index
                                          else None, age_groups)
        closed = [p.closed_at for p in parts]
        ids = np.array([item_index[b.item_id] for b in behaviors])
        ratings = np.array([int(round(b.rating)) for b in behaviors]).clip(1, 5)
        for j, b in enumerate(behaviors):
            lo = max(0, j - hist_len)
            pad = hist_len - (j - lo)
            cols["hist_items"].append(np.concatenate([np.zeros(pad, int), ids[lo:j]]))
            cols["hist_ratings"].append(np.concatenate([np.zeros(pad, int), ratings[lo:j]]))
            n_usable = bisect.bisect_left(closed, b.timestamp)  # partitions closed strictly before t
            slots = np.arange(max(0, n_usable - max_partitions), n_usable) + offset
            cols["part_slots"].append(np.concatenate([np.full(max_partitions - len(slots), -1), slots]))
        offset += len(parts)
        cols["user"].append(np.full(len(behaviors), u_idx + 1))
        cols["item"].append(ids)
        cols["label"].append(labels[pos])
        cols["time"].append(rows["timestamp"].to_numpy(float))
    tensors = {k: torch.as_tensor(np.stack(v) if k in ("hist_items", "hist_ratings", "part_slots") else np.concatenate(v))
               for k, v in cols.items()}
    tensors["label"] = tensors["label"].float()
    data = CTRData(tensors, partitions, histories, offsets, item_genres, users, items, catalog, profiles)
    return with_split(data, split, valid, test, seed)


def with_split(data: CTRData, mode: str, valid: float = 0.1, test: float = 0.1, seed: int = 0) -> CTRData:
    """The same samples under another split: "users" (users disjoint; `valid` is the share of the
    training users held out, so 0.1 / 0.1 gives 81 / 9 / 10) or "time" (per user 80 / 10 / 10)."""
    if mode not in SPLIT_MODES:
        raise InputError(f"split must be one of {', '.join(SPLIT_MODES)}, got {mode!r}")
    frame = pd.DataFrame({"user_id": [data.users[i - 1] for i in data.tensors["user"].tolist()],
                          "timestamp": data.tensors["time"].numpy()})
    labels = user_split(frame, valid * (1 - test), test, seed) if mode == "users" else time_split(frame, valid, test)
    split = torch.as_tensor(np.array([SPLITS[s] for s in labels]))
    return replace(data, tensors={**data.tensors, "split": split}, split_mode=mode)


def train_partition_mask(data: CTRData) -> list[bool]:
    """True for partitions closed no later than the user's last training sample (fit encoders on these only)."""
    out = []
    times, split, users = data.tensors["time"], data.tensors["split"], data.tensors["user"]
    last_train = {}
    for u_idx, user in enumerate(data.users, start=1):
        sel = (users == u_idx) & (split == SPLITS["train"])
        last_train[user] = float(times[sel].max()) if bool(sel.any()) else float("-inf")
    for user in data.users:
        out += [p.closed_at <= last_train[user] for p in data.partitions[user]]
    return out
