"""Per-author paper graphs (the structural view of MIND) and pluggable text encoders.

Edges follow the official KDD Cup 2024 GCN/GCCAD baseline (`build_graph.py::co_occurance`):
  w_coauthor(i, j) = |A_i ∩ A_j| / |A_i ∪ A_j|   (co-author name sets, the target name removed)
  w_org(i, j)      = Jaccard(org words of i, org words of j)
  w_venue(i, j)    = Jaccard(venue words of i, venue words of j)
An edge exists when any weight is > 0; edge_attr = [w_coauthor, w_org, w_venue] and the message-passing
weight is their mean (the baseline's `--usecoo --usecov` averaging). A graph with no edge falls back to
the complete graph with weight 1e-4 (as the baseline does).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.io import atomic_write_json, load_tensors, read_json, save_tensors

# Words that say nothing about who wrote a paper; dropping them keeps the org/venue Jaccard from
# linking every pair (ours: the baseline uses raw word sets).
STOPWORDS = frozenset("of the and on in for at a an de ieee acm journal conference proceedings international "
                      "transactions letters review university institute department school college".split())


def normalize_name(name: str) -> frozenset[str]:
    """Accents stripped, lower-cased, split on non-letters: 'Jié Tang' == 'tang jie' (a token set)."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    return frozenset(t for t in re.split(r"[^a-z]+", text) if t)


def words(text: str) -> frozenset[str]:
    return frozenset(w for w in re.split(r"[^a-z0-9]+", text.lower()) if w and w not in STOPWORDS)


def jaccard(a: frozenset, b: frozenset) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


@dataclass
class PaperView:
    """What the graph needs from one paper: co-author names (target removed), org and venue words."""

    coauthors: frozenset
    orgs: frozenset
    venue: frozenset
    name_found: bool


def paper_view(info: dict, target: str) -> PaperView:
    """Remove the target author (matched as a name-token set) from the paper's author list.

    Fallback when the target name is not in the list: nothing is removed and `name_found` is False.
    """
    me = normalize_name(target)
    names = [normalize_name(a["name"]) for a in info["authors"]]
    found = me in names
    co = frozenset(" ".join(sorted(n)) for n in names if n and n != me)
    orgs = frozenset().union(*[words(a["org"]) for a in info["authors"]]) if info["authors"] else frozenset()
    return PaperView(co, orgs, words(info["venue"]), found)


def edge_weights(a: PaperView, b: PaperView) -> tuple[float, float, float]:
    return jaccard(a.coauthors, b.coauthors), jaccard(a.orgs, b.orgs), jaccard(a.venue, b.venue)


@dataclass
class AuthorGraph:
    """One author's papers as a graph: x (n, d), edge_index (2, E) both directions, edge_attr (E, 3)."""

    aid: str
    name: str
    pids: list[str]
    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    y: torch.Tensor | None  # 1 normal, 0 outlier (None when hidden)
    name_missing: int = 0  # papers whose author list lacks the target name

    @property
    def edge_weight(self) -> torch.Tensor:
        return self.edge_attr.mean(dim=1)

    @property
    def edge_label(self) -> torch.Tensor | None:
        """1 when both endpoints are normal (the link-loss target of GCCAD)."""
        if self.y is None:
            return None
        return (self.y[self.edge_index[0]] * self.y[self.edge_index[1]]).float()


def build_edges(views: list[PaperView]) -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs with any positive weight, in both directions; complete graph at 1e-4 when none."""
    src, dst, attr = [], [], []
    n = len(views)
    for i in range(n):
        for j in range(i + 1, n):
            w = edge_weights(views[i], views[j])
            if max(w) > 0:
                src += [i, j]
                dst += [j, i]
                attr += [w, w]
    if not src and n > 1:
        for i in range(n):
            for j in range(n):
                if i != j:
                    src.append(i)
                    dst.append(j)
                    attr.append((1e-4, 1e-4, 1e-4))
    edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)
    return edge_index, torch.tensor(attr, dtype=torch.float32).reshape(-1, 3)


def author_graph(aid: str, name: str, pids: list[str], papers: dict[str, dict], features: torch.Tensor,
                 labels: dict[str, int] | None = None) -> AuthorGraph:
    """The graph of one author; `features` (n, d) are the node features in `pids` order."""
    views = [paper_view(papers[p], name) for p in pids]
    edge_index, edge_attr = build_edges(views)
    y = torch.tensor([labels[p] for p in pids], dtype=torch.float32) if labels is not None else None
    return AuthorGraph(aid, name, list(pids), features, edge_index, edge_attr, y,
                       sum(not v.name_found for v in views))


# ------------------------------------------------------------------------------------------------
# Text: paper strings and encoders


def paper_string(info: dict, view: str = "all") -> str:
    """The encoder input: 'title' view, or MIND's '{ title: .. venue: .. author: .. organization: .. }'."""
    if view == "title":
        return info["title"]
    venue = " ".join(info["venue"].split()[:20])
    names = " ;".join(a["name"] for a in info["authors"][:10])
    orgs = " ;".join(a["org"] for a in info["authors"][:10] if a["org"])
    return f"{{ title: {info['title']} venue: {venue} author: {names} organization: {orgs} }}".lower()


def _top_right_singular_vectors(x, k: int, seed: int) -> np.ndarray:
    """(k, V) top right singular vectors of a sparse (n, V) matrix, signs fixed (largest entry > 0).

    Exact (eigenvectors of the V x V Gram matrix) for vocabularies up to 4,096 words, which is
    faster than randomized SVD there; scikit-learn's randomized TruncatedSVD above that."""
    if x.shape[1] <= 4096:
        gram = (x.T @ x).toarray().astype(np.float64)
        _, vecs = np.linalg.eigh(gram)
        comps = vecs[:, ::-1][:, :k].T
    else:
        from sklearn.decomposition import TruncatedSVD

        comps = TruncatedSVD(n_components=k, random_state=seed).fit(x).components_
    flip = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    return (comps * flip[:, None]).astype(np.float32)


class TfidfSvdEncoder:
    """Offline default text encoder: TF-IDF (smooth idf, l2) then truncated SVD, then l2 normalisation."""

    def __init__(self, dim: int = 128, seed: int = 0):
        self.dim = dim
        self.seed = seed

    def fit(self, texts: list[str]) -> TfidfSvdEncoder:
        from sklearn.feature_extraction.text import CountVectorizer

        vec = CountVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b")
        counts = vec.fit_transform(texts)
        self.vocabulary_ = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        df = np.asarray((counts > 0).sum(axis=0)).ravel()
        self.idf_ = np.log((1 + len(texts)) / (1 + df)) + 1.0
        dim = max(1, min(self.dim, counts.shape[1] - 1, len(texts) - 1))
        self.components_ = _top_right_singular_vectors(self._tfidf(counts), dim, self.seed)
        return self

    def _tfidf(self, counts):
        from sklearn.preprocessing import normalize

        return normalize(counts.multiply(self.idf_).tocsr())

    def encode(self, texts: list[str]) -> torch.Tensor:
        from sklearn.feature_extraction.text import CountVectorizer

        vec = CountVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b", vocabulary=self.vocabulary_)
        z = self._tfidf(vec.transform(texts)) @ self.components_.T
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
        out = torch.zeros(len(texts), self.dim)
        out[:, : z.shape[1]] = torch.nn.functional.normalize(z, dim=1)
        return out

    def save(self, path: str | Path) -> None:
        path = Path(path)
        atomic_write_json(path.with_suffix(".json"), {"kind": "tfidf-svd", "dim": self.dim, "seed": self.seed,
                                                      "vocabulary": self.vocabulary_})
        save_tensors(path.with_suffix(".safetensors"), {"idf": torch.as_tensor(self.idf_, dtype=torch.float64),
                                                        "components": torch.as_tensor(self.components_)})

    @classmethod
    def load(cls, path: str | Path) -> TfidfSvdEncoder:
        path = Path(path)
        meta = read_json(path.with_suffix(".json"))
        enc = cls(meta["dim"], meta["seed"])
        tensors = load_tensors(path.with_suffix(".safetensors"))
        enc.vocabulary_ = meta["vocabulary"]
        enc.idf_ = tensors["idf"].numpy()
        enc.components_ = tensors["components"].numpy()
        return enc


class HFMeanPoolEncoder:
    """A frozen Hugging Face encoder by path (MIND uses roberta-base): attention-masked mean pooling."""

    def __init__(self, path: str | Path, max_length: int = 512, batch_size: int = 32, device: str | None = None):
        from transformers import AutoModel, AutoTokenizer

        if not Path(path).exists():
            raise InputError(f"text encoder {path} does not exist: pass a local Hugging Face model folder")
        self.path = str(path)
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        if device:
            self.model.to(device)
        self.max_length, self.batch_size = max_length, batch_size
        self.dim = int(self.model.config.hidden_size)

    def fit(self, texts: list[str]) -> HFMeanPoolEncoder:
        return self

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        out = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tok(texts[i: i + self.batch_size], padding=True, truncation=True,
                             max_length=self.max_length, return_tensors="pt").to(device)
            h = self.model(**batch).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
            out.append(((h * m).sum(1) / m.sum(1).clamp_min(1)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)
