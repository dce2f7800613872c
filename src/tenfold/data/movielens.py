"""RecBole atomic files (`.inter`, `.item`, `.user`): MovieLens-100K from the installed `recbole`
wheel (which ships `dataset_example/ml-100k`), or any folder of atomic files (ML-1M, Amazon-Books...).

Headers are `field:type` (token, token_seq, float, float_seq); columns are returned under the bare
field name. MovieLens files are read from the installed package and never copied into this repo.

ML-1M by path: RecBole's `ml-1m` atomic files (`ml-1m.inter` user_id/item_id/rating/timestamp,
`ml-1m.item` item_id/movie_title/release_year/genre, `ml-1m.user` user_id/age/gender/occupation/zip_code,
made by RecBole's conversion tools from GroupLens' files) load with `load_atomic(folder)`.

Also: `synthetic_lifelong` (a seeded generator with the same schema whose users' tastes drift across
eras), `click_labels` (rating >= 4 is a click), `time_split` (per-user split by time, no leakage) and
`user_split` (users split into disjoint train / valid / test groups, as KAR's preprocessing does).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tenfold.core.errors import InputError
from tenfold.data.registry import DatasetSpec, register_dataset

_TYPES = {"token": str, "token_seq": str, "float": float, "float_seq": str}


def recbole_ml100k_dir() -> Path | None:
    """Folder of ml-100k inside the installed recbole package, found without importing recbole."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"
    return folder if (folder / "ml-100k.inter").is_file() else None


@dataclass(frozen=True)
class AtomicDataset:
    """inter: user_id, item_id, rating?, timestamp (sorted by user, time); item/user: side tables or None."""

    name: str
    inter: pd.DataFrame
    item: pd.DataFrame | None
    user: pd.DataFrame | None


def read_atomic(path: str | os.PathLike) -> pd.DataFrame:
    """One atomic file; `field:type` headers become bare names; token columns stay strings."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"atomic file {path} does not exist")
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline().rstrip("\n").split("\t")
    names, dtypes = [], {}
    for col in header:
        if ":" not in col:
            raise InputError(f"{path}: header field {col!r} is not 'name:type' (RecBole atomic format)")
        name, typ = col.split(":", 1)
        if typ not in _TYPES:
            raise InputError(f"{path}: field {name!r} has unknown type {typ!r}; expected one of {sorted(_TYPES)}")
        names.append(name)
        dtypes[name] = _TYPES[typ]
    return pd.read_csv(path, sep="\t", skiprows=1, names=names, dtype=dtypes, keep_default_na=False,
                       na_values={n: [""] for n, t in dtypes.items() if t is float}, quoting=3, encoding="utf-8",
                       encoding_errors="replace")


def load_atomic(name_or_path: str | os.PathLike = "ml-100k") -> AtomicDataset:
    """'ml-100k' (from the installed recbole wheel) or a folder holding NAME.inter [+ .item, .user]."""
    if str(name_or_path) == "ml-100k" and not Path(name_or_path).exists():
        folder = recbole_ml100k_dir()
        if folder is None:
            raise InputError("MovieLens-100K needs the recbole package: `pip install --no-deps recbole` "
                             "(the Makefile does), or pass a folder of atomic files")
    else:
        folder = Path(name_or_path)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of RecBole atomic files (NAME.inter, NAME.item, NAME.user)")
    inters = sorted(folder.glob("*.inter"))
    if len(inters) != 1:
        raise InputError(f"{folder} must hold exactly one .inter file, found {len(inters)}")
    stem = inters[0].stem
    inter = read_atomic(inters[0])
    for col in ("user_id", "item_id", "timestamp"):
        if col not in inter.columns:
            raise InputError(f"{inters[0]} lacks the {col!r} column")
    inter = inter.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    item = read_atomic(folder / f"{stem}.item") if (folder / f"{stem}.item").is_file() else None
    user = read_atomic(folder / f"{stem}.user") if (folder / f"{stem}.user").is_file() else None
    return AtomicDataset(stem, inter, item, user)


SYNTHETIC_GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Animation")
_OCCUPATIONS = ("student", "engineer", "artist", "educator", "other")


def synthetic_lifelong(n_users: int = 120, n_items: int = 400, events: tuple[int, int] = (60, 180), n_eras: int = 3,
                       drift: float = 1.0, seed: int = 0) -> AtomicDataset:
    """A seeded MovieLens-shaped dataset whose users' genre tastes drift across `n_eras` eras.

    Each user has a stable taste plus one taste offset per era (scale `drift`); an item's appeal is
    the taste of its genres, the user picks items with probability rising with appeal, and the
    rating is the quantised appeal plus noise. So long histories really hold interest shifts.
    """
    if n_users < 1 or n_items < 2 or n_eras < 1 or not 1 <= events[0] <= events[1]:
        raise InputError(f"synthetic_lifelong needs n_users>=1, n_items>=2, n_eras>=1, 1<=events[0]<=events[1]; "
                         f"got {n_users}, {n_items}, {n_eras}, {events}")
    rng = np.random.default_rng(seed)
    n_genres = len(SYNTHETIC_GENRES)
    genres = np.zeros((n_items, n_genres))
    for i in range(n_items):
        genres[i, rng.choice(n_genres, size=rng.integers(1, 3), replace=False)] = 1.0
    quality = rng.normal(0, 0.3, n_items)
    years = rng.integers(1950, 2000, n_items)
    rows = []
    for u in range(n_users):
        base = rng.normal(0, 0.6, n_genres)
        eras = base + rng.normal(0, drift, (n_eras, n_genres))
        bias = rng.normal(0, 0.4)
        n = int(rng.integers(events[0], events[1] + 1))
        t = 8.8e8 + rng.uniform(0, 90 * 86400) + np.cumsum(rng.exponential(86400.0, n)).round()
        seen: set[int] = set()
        for k in range(n):
            taste = eras[min(k * n_eras // n, n_eras - 1)]
            appeal = genres @ taste / np.maximum(genres.sum(1), 1) + quality
            logits = 1.5 * appeal
            logits[list(seen)] = -np.inf
            p = np.exp(logits - logits[np.isfinite(logits)].max())
            item = int(rng.choice(n_items, p=p / p.sum()))
            seen.add(item)
            if len(seen) == n_items:
                seen.clear()
            rating = float(np.clip(np.round(3.0 + 1.3 * (appeal[item] + bias) + rng.normal(0, 0.5)), 1, 5))
            rows.append((str(u + 1), str(item + 1), rating, float(t[k])))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    inter = inter.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    item = pd.DataFrame({
        "item_id": [str(i + 1) for i in range(n_items)],
        "movie_title": [f"Movie {i + 1}" for i in range(n_items)],
        "release_year": [str(y) for y in years],
        "class": [" ".join(SYNTHETIC_GENRES[g] for g in np.flatnonzero(genres[i])) for i in range(n_items)],
    })
    user = pd.DataFrame({
        "user_id": [str(u + 1) for u in range(n_users)],
        "age": [str(a) for a in rng.integers(18, 70, n_users)],
        "gender": rng.choice(["M", "F"], n_users).tolist(),
        "occupation": rng.choice(_OCCUPATIONS, n_users).tolist(),
    })
    return AtomicDataset(f"synthetic-lifelong-{seed}", inter, item, user)


def click_labels(inter: pd.DataFrame, threshold: float = 4.0) -> pd.Series:
    """The CTR label: rating >= threshold is a click (1), else 0 (KAR / ReLLa convention for MovieLens)."""
    if "rating" not in inter.columns:
        raise InputError("the interactions have no 'rating' column, so no click label can be derived")
    return (inter["rating"].to_numpy() >= threshold).astype(np.int64)


def time_split(inter: pd.DataFrame, valid: float = 0.1, test: float = 0.1) -> np.ndarray:
    """Per user, in time order: the first events are 'train', then 'valid', the last 'test'.

    Returns one label per row ('train'|'valid'|'test'). A user's later events never land in an earlier
    split, so nothing a model trains on happens after what it is tested on (for that user).
    """
    if not (0 <= valid < 1 and 0 <= test < 1 and valid + test < 1):
        raise InputError(f"valid and test fractions must be in [0, 1) with sum < 1, got {valid}, {test}")
    ordered = inter.sort_values(["user_id", "timestamp"], kind="stable")
    if not ordered.index.equals(inter.index):
        raise InputError("interactions must be sorted by (user_id, timestamp) before splitting (load_atomic does)")
    position = inter.groupby("user_id", sort=False).cumcount().to_numpy()
    size = inter.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    n_test = np.floor(size * test).astype(int)
    n_valid = np.floor(size * valid).astype(int)
    out = np.full(len(inter), "train", dtype=object)
    out[position >= size - n_test - n_valid] = "valid"
    out[position >= size - n_test] = "test"
    return out


def user_split(inter: pd.DataFrame, valid: float = 0.1, test: float = 0.1, seed: int = 0) -> np.ndarray:
    """Users, shuffled with `seed`, split into disjoint groups: the first `test` share of users are
    'test', the next `valid` share 'valid', the rest 'train'; every row takes its user's group.

    KAR's preprocessing shuffles the users and splits them 9:1 into train and test users; validation
    users (for early stopping) come out of the training share here. Returns one label per row.
    """
    if not (0 < test < 1 and 0 <= valid < 1 and valid + test < 1):
        raise InputError(f"user split needs 0 < test < 1, 0 <= valid < 1 and valid + test < 1, got {valid}, {test}")
    users = np.array(sorted(inter["user_id"].astype(str).unique()))
    if len(users) < 3:
        raise InputError(f"a user-disjoint split needs at least 3 users, got {len(users)}")
    order = np.random.default_rng(seed).permutation(len(users))
    n_test = max(1, int(round(len(users) * test)))
    n_valid = max(1, int(round(len(users) * valid))) if valid > 0 else 0
    group = np.full(len(users), "train", dtype=object)
    group[order[:n_test]] = "test"
    group[order[n_test:n_test + n_valid]] = "valid"
    if (group == "train").sum() == 0:
        raise InputError(f"no training users left after the split ({len(users)} users): use more users")
    lookup = dict(zip(users, group, strict=True))
    return inter["user_id"].astype(str).map(lookup).to_numpy(dtype=object)


register_dataset(DatasetSpec(
    name="synthetic-lifelong", source="generated",
    size="120 users x 60-180 ratings over 400 items (defaults)", licence="generated here (no third-party data)",
    loader="tenfold.data.movielens:synthetic_lifelong",
    description="Seeded MovieLens-schema ratings whose users' genre tastes drift across eras (LIBER tests)."))

register_dataset(DatasetSpec(
    name="ml-100k", source="installed package or user path",
    size="100,000 ratings, 943 users, 1,682 movies (+ genres, years, user demographics)",
    licence="GroupLens research licence (non-commercial; cite Harper & Konstan 2015), shipped in recbole",
    loader="tenfold.data.movielens:load_atomic",
    description="MovieLens-100K as RecBole atomic files from the installed recbole wheel; any atomic-file folder by path.",
    available=lambda: recbole_ml100k_dir() is not None))

register_dataset(DatasetSpec(
    name="ml-1m", source="user path",
    size="1,000,209 ratings, 6,040 users, 3,706 movies (+ genres, years, user demographics)",
    licence="GroupLens research licence (non-commercial; cite Harper & Konstan 2015); not redistributed here",
    loader="tenfold.data.movielens:load_atomic",
    description="MovieLens-1M as RecBole atomic files (ml-1m.inter/.item/.user from RecBole's conversion tools); "
                "pass the folder: `tenfold liber reproduce --data /path/to/ml-1m`.",
    available=lambda: False))
