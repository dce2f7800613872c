"""RecBole atomic files (`.inter`, `.item`, `.user`): MovieLens-100K from the installed `recbole`
wheel (which ships `dataset_example/ml-100k`), or any folder of atomic files (ML-1M, Amazon-Books...).

Headers are `field:type` (token, token_seq, float, float_seq); columns are returned under the bare
field name. MovieLens files are read from the installed package and never copied into this repo.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

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


register_dataset(DatasetSpec(
    name="ml-100k", source="installed package or user path",
    size="100,000 ratings, 943 users, 1,682 movies (+ genres, years, user demographics)",
    licence="GroupLens research licence (non-commercial; cite Harper & Konstan 2015), shipped in recbole",
    loader="tenfold.data.movielens:load_atomic",
    description="MovieLens-100K as RecBole atomic files from the installed recbole wheel; any atomic-file folder by path.",
    available=lambda: recbole_ml100k_dir() is not None))
