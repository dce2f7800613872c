"""Document relational networks: bag-of-words counts per node plus an undirected link list.

Two sources:
- the Planetoid raw files (`ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}`) of Cora, Citeseer and
  PubMed exactly as a user downloads them (parsed by torch_geometric's reader; the files are pickles,
  so only load files you trust);
- networks sampled from the GPGBN generative model (`tenfold.wgae.gpgbn.sample`), labelled synthetic,
  saved/loaded as `.npz` by `save_network`/`load_network`.

Counts are kept sparse (COO triplets) and links as a (2, E) list with i < j; nothing is N x N.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tenfold.core.errors import InputError
from tenfold.data.registry import DatasetSpec, register_dataset

PLANETOID_NAMES = ("cora", "citeseer", "pubmed")
_PLANETOID_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


@dataclass
class DocumentNetwork:
    """N documents over a V-word vocabulary with undirected links.

    counts: (rows=node, cols=word, vals=count) COO triplets; edges: (2, E) int64 with i < j, unique.
    truth: optional generative parameters of a sampled network ({"phi": [...], "theta": [...], "u": [...]}).
    """

    name: str
    n_nodes: int
    n_words: int
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    edges: np.ndarray
    labels: np.ndarray | None = None
    synthetic: bool = False
    truth: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)  # what validation changed (dropped self-loops, ...)
    vocab: list[str] | None = None  # word of each column, where known
    node_names: list[str] | None = None  # e.g. the documentation page of each node
    label_names: list[str] | None = None

    @property
    def n_edges(self) -> int:
        return int(self.edges.shape[1])

    def dense_counts(self) -> np.ndarray:
        """(N, V) float32 counts; for encoders' inputs (N x V, never N x N)."""
        out = np.zeros((self.n_nodes, self.n_words), dtype=np.float32)
        np.add.at(out, (self.rows, self.cols), self.vals)
        return out

    def degrees(self) -> np.ndarray:
        return np.bincount(self.edges.ravel(), minlength=self.n_nodes)

    def with_edges(self, edges: np.ndarray) -> DocumentNetwork:
        """Same documents, another (already clean) link list: the training graph of a split."""
        return DocumentNetwork(self.name, self.n_nodes, self.n_words, self.rows, self.cols, self.vals,
                               edges, self.labels, self.synthetic, self.truth, dict(self.report), self.vocab,
                               self.node_names, self.label_names)


def build_network(counts, edges, labels=None, name: str = "user", n_nodes: int | None = None,
                  synthetic: bool = False, truth: dict | None = None) -> DocumentNetwork:
    """Validate user arrays into a DocumentNetwork.

    counts: dense (N, V) array or scipy sparse matrix of non-negative word counts.
    edges: (2, E) or (E, 2) integer node ids; directed lists are symmetrised, duplicates and self-loops
    dropped (counted in `report`); ids out of range or negative are rejected.
    """
    import scipy.sparse as sp

    mat = sp.coo_matrix(counts)
    if mat.ndim != 2 or mat.shape[0] == 0 or mat.shape[1] == 0:
        raise InputError(f"counts must be a non-empty (nodes, words) matrix, got shape {mat.shape}")
    if not np.all(np.isfinite(mat.data)) or (mat.data < 0).any():
        raise InputError("counts must be finite and non-negative (word counts per document)")
    mat.sum_duplicates()
    mat.eliminate_zeros()
    n = int(n_nodes if n_nodes is not None else mat.shape[0])
    if n != mat.shape[0]:
        raise InputError(f"counts has {mat.shape[0]} rows but n_nodes={n}: one row of counts per node")
    if mat.nnz == 0:
        raise InputError("every document is empty (all counts are zero): nothing to model")
    edges = np.asarray(edges)
    if edges.size == 0:
        edges = np.zeros((2, 0), dtype=np.int64)
    if edges.ndim != 2 or 2 not in edges.shape:
        raise InputError(f"edges must have shape (2, E) or (E, 2), got {edges.shape}")
    if edges.shape[0] != 2:
        edges = edges.T
    if not np.issubdtype(edges.dtype, np.integer):
        if not np.all(np.equal(np.mod(edges, 1), 0)):
            raise InputError("edge node ids must be integers")
        edges = edges.astype(np.int64)
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise InputError(f"edge node ids must lie in [0, {n - 1}], found {int(edges.min())}..{int(edges.max())}; "
                         "renumber the nodes 0..N-1 in the order of the count rows")
    clean, report = _clean_edges(edges.astype(np.int64), n)
    report["empty_documents"] = int(n - len(np.unique(mat.row)))
    deg = np.bincount(clean.ravel(), minlength=n)
    report["isolated_nodes"] = int((deg == 0).sum())
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).ravel()
        if labels.shape[0] != n:
            raise InputError(f"labels has {labels.shape[0]} entries, expected one per node ({n})")
    return DocumentNetwork(name, n, int(mat.shape[1]), mat.row.astype(np.int64), mat.col.astype(np.int64),
                           mat.data.astype(np.float64), clean, labels, synthetic, truth or {}, report)


def _clean_edges(edges: np.ndarray, n: int) -> tuple[np.ndarray, dict]:
    """Undirected, unique, no self-loops, i < j; say how many of each were removed or added."""
    i, j = edges
    self_loops = int((i == j).sum())
    keep = i != j
    i, j = i[keep], j[keep]
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    key = np.unique(lo * n + hi)
    one_way = int((~np.isin(j * n + i, i * n + j)).sum())  # links whose reverse is absent
    report = {"self_loops_dropped": self_loops, "duplicate_edges_dropped": int(len(lo) - len(key)),
              "one_way_links_made_undirected": int(one_way)}
    return np.stack([key // n, key % n]).astype(np.int64), report


def load_planetoid(root: str | os.PathLike, name: str) -> DocumentNetwork:
    """Cora/Citeseer/PubMed from the raw `ind.<name>.*` files in `root` (or `root/<name>/raw`).

    Features are used as counts as the released code does (0/1 for Cora/Citeseer, TF-IDF for PubMed).
    """
    name = name.lower()
    if name not in PLANETOID_NAMES:
        raise InputError(f"Planetoid name must be one of {PLANETOID_NAMES}, got {name!r}")
    root = Path(root)
    folder = next((f for f in (root, root / name / "raw", root / "raw")
                   if (f / f"ind.{name}.x").is_file()), None)
    if folder is None:
        raise InputError(f"no Planetoid files ind.{name}.* under {root}: download "
                         f"{', '.join(f'ind.{name}.{p}' for p in _PLANETOID_PARTS)} (planetoid repo 'data/') there")
    missing = [p for p in _PLANETOID_PARTS if not (folder / f"ind.{name}.{p}").is_file()]
    if missing:
        raise InputError(f"{folder}: missing Planetoid files {', '.join(f'ind.{name}.{p}' for p in missing)}")
    from torch_geometric.io.planetoid import read_planetoid_data

    try:
        data = read_planetoid_data(str(folder), name)
    except Exception as err:  # corrupted pickles, shape mismatches
        raise InputError(f"{folder}: could not parse the Planetoid files for {name!r} ({err}); "
                         "re-download them") from err
    x = data.x.numpy()
    return build_network(x, data.edge_index.numpy(), data.y.numpy(), name=name, n_nodes=x.shape[0])


def save_network(net: DocumentNetwork, path: str | os.PathLike) -> Path:
    """Write a network (and its true parameters, if sampled) to one `.npz` file."""
    import io

    from tenfold.core.io import atomic_write_bytes

    arrays = {"rows": net.rows, "cols": net.cols, "vals": net.vals, "edges": net.edges,
              "shape": np.array([net.n_nodes, net.n_words]), "synthetic": np.array(net.synthetic),
              "name": np.array(net.name)}
    if net.labels is not None:
        arrays["labels"] = net.labels
    for key in ("vocab", "node_names", "label_names"):
        if getattr(net, key) is not None:
            arrays[key] = np.array(getattr(net, key), dtype=str)
    for key, mats in net.truth.items():
        for t, m in enumerate(mats):
            arrays[f"truth_{key}_{t}"] = np.asarray(m)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_network(path: str | os.PathLike) -> DocumentNetwork:
    """Read a `.npz` written by `save_network` (or by hand with rows/cols/vals/edges/shape)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"network file {path} does not exist (make one with `tenfold wgae sample`)")
    try:
        z = np.load(path, allow_pickle=False)
        n, v = (int(s) for s in z["shape"])
        rows, cols, vals, edges = z["rows"], z["cols"], z["vals"], z["edges"]
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:  # empty or cut-short files too
        raise InputError(f"{path}: not a network .npz (needs rows, cols, vals, edges, shape): {err}") from err
    import scipy.sparse as sp

    if len(rows) and (rows.max() >= n or cols.max() >= v):
        raise InputError(f"{path}: count indices exceed shape ({n}, {v})")
    truth: dict = {}
    for key in sorted(k for k in z.files if k.startswith("truth_")):
        _, what, t = key.split("_")
        truth.setdefault(what, {})[int(t)] = z[key]
    truth = {k: [d[t] for t in sorted(d)] for k, d in truth.items()}
    counts = sp.coo_matrix((vals, (rows, cols)), shape=(n, v))
    net = build_network(counts, edges, z["labels"] if "labels" in z.files else None,
                        name=str(z["name"]) if "name" in z.files else path.stem, n_nodes=n,
                        synthetic=bool(z["synthetic"]) if "synthetic" in z.files else False, truth=truth)
    for key in ("vocab", "node_names", "label_names"):
        if key in z.files:
            setattr(net, key, [str(w) for w in z[key]])
    if net.vocab is not None and len(net.vocab) != v:
        raise InputError(f"{path}: vocab has {len(net.vocab)} words but the counts have {v} columns")
    return net


register_dataset(DatasetSpec(
    name="planetoid", source="user path", size="Cora 2,708 / Citeseer 3,327 / PubMed 19,717 nodes",
    licence="see the Planetoid repository", loader="tenfold.data.planetoid:load_planetoid",
    description="Planetoid raw files ind.<name>.* (Cora, Citeseer, PubMed) from a folder you downloaded them to."))
register_dataset(DatasetSpec(
    name="gpgbn-synthetic", source="generated", size="any size (default 800 documents, 400 words)",
    licence="generated here", loader="tenfold.wgae.gpgbn:sample",
    description="Synthetic document network drawn from the GPGBN generative model with known topics "
                "(`tenfold wgae sample`)."))
