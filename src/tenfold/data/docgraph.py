"""Document networks for relational topic models: a real one read offline and a generated one.

- `python-docs-graph`: the Python documentation as Debian's `python3-doc` installs it (HTML under
  /usr/share/doc/python3*/html). Each page (or each section) is a node; its words, outside code
  blocks and table-of-contents lists, are its bag-of-words; a hyperlink from one page's main text to
  another page is an undirected link. Debian links several python3* doc folders to one, so every
  file is read once, by its real path.
- `dcsbm-lda`: a degree-corrected stochastic block model (Karrer & Newman 2011) whose documents are
  LDA mixtures (Blei et al. 2003) with a topic prior per block. It is *not* GPGBN: links come from
  block memberships and degree propensities, words from Dirichlet mixtures, so no model here has
  its generative process for free.

Both return a `DocumentNetwork` (tenfold.data.planetoid) with `vocab`; the parsed docs graph is
cached under $TENFOLD_HOME/data/python-docs-graph.
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from tenfold.core.errors import InputError
from tenfold.data.planetoid import DocumentNetwork, build_network, load_network, save_network
from tenfold.data.registry import DatasetSpec, register_dataset

PY_DOC_HTML_GLOB = "/usr/share/doc/python3*/html"
SKIP_PAGES = re.compile(r"^(genindex.*|search|py-modindex|contents|index|download|copyright|license|bugs|about)\.html$")
TOKEN = r"(?u)\b[a-zA-Z][a-zA-Z]{2,}\b"  # words of 3+ letters; identifiers split at '_' and '.'
LEVELS = ("page", "section")
READER_VERSION = 2  # part of the cache key: bump when parsing changes
# generator limits: far above any experiment here, low enough that a request fails at once instead of
# allocating for minutes (the dcsbm-lda counts are a dense N x V array)
MAX_NODES, MAX_WORDS, MAX_TOPICS = 200_000, 100_000, 2_000
MAX_DOC_LENGTH, MAX_DEGREE, MAX_CELLS, MAX_TOKENS = 100_000.0, 1_000.0, 5 * 10**7, 5 * 10**7


def python_doc_roots() -> list[Path]:
    """Each installed Python HTML documentation folder once (Debian links python3-doc, python3.11-doc,
    python3-dev, ... to one folder; pip's reST-only docs folder has no HTML pages and is skipped)."""
    roots = {os.path.realpath(p) for p in glob.glob(PY_DOC_HTML_GLOB)}
    return sorted(Path(r) for r in roots if (Path(r) / "library").is_dir())


@dataclass
class _Section:
    id: str
    title: str = ""
    text: list[str] = field(default_factory=list)


class _PageParser(HTMLParser):
    """One Sphinx page: the sections of its main text, where each anchor lives, and its hyperlinks.

    Skips code blocks (<pre>) and table-of-contents lists (toctree-wrapper), and everything outside
    <div class="body" role="main">.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[_Section] = []
        self.anchor_section: dict[str, int] = {}
        self.links: list[tuple[int, str]] = []  # (section index, href)
        self._stack: list[int] = []  # open <section>s (indices)
        self._divs = 0
        self._body_at = self._skip_at = None
        self._pre = 0
        self._heading = None

    @property
    def _in_body(self) -> bool:
        return self._body_at is not None and self._body_at > 0

    @property
    def _current(self) -> int:
        return self._stack[-1] if self._stack else 0

    def handle_starttag(self, tag: str, attrs) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "div":
            self._divs += 1
            if self._body_at is None and "body" in classes and a.get("role") == "main":
                self._body_at = self._divs
                self.sections.append(_Section(""))  # text before the first <section>
            elif self._in_body and self._skip_at is None and "toctree-wrapper" in classes:
                self._skip_at = self._divs
        if not self._in_body:
            return
        if tag == "section":
            self.sections.append(_Section(a.get("id", "")))
            self._stack.append(len(self.sections) - 1)
        if a.get("id"):
            self.anchor_section.setdefault(a["id"], self._current)
        if tag == "pre":
            self._pre += 1
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._heading = []
        if tag == "a" and a.get("href") and self._skip_at is None and "headerlink" not in classes:
            self.links.append((self._current, a["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            if self._skip_at == self._divs:
                self._skip_at = None
            if self._body_at == self._divs:
                self._body_at = -1  # the main text is over; ignore the rest of the page (sidebar, footer)
            self._divs -= 1
        if not self._in_body:
            return
        if tag == "section" and self._stack:
            self._stack.pop()
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6") and self._heading is not None:
            sec = self.sections[self._current]
            sec.title = sec.title or "".join(self._heading).replace("\u00b6", "").strip()
            self._heading = None

    def handle_data(self, data: str) -> None:
        if not self._in_body or self._pre or self._skip_at is not None:
            return
        if self._heading is not None:
            self._heading.append(data)
        self.sections[self._current].text.append(data)


@dataclass(frozen=True)
class DocGraphConfig:
    """How the docs become a network. Defaults: pages as nodes, a 1,000-word vocabulary."""

    level: str = "page"  # "page" or "section"
    vocab_size: int = 1000  # most frequent words kept (after stop words and the df limits)
    min_df: int = 3  # a word must occur in at least this many nodes
    max_df: float = 0.5  # ... and in at most this fraction of them
    min_tokens: int = 20  # nodes with fewer in-vocabulary tokens are dropped (pure navigation pages)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise InputError(f"level must be one of {LEVELS}, got {self.level!r}")
        if self.vocab_size < 10 or self.min_df < 1 or not 0 < self.max_df <= 1 or self.min_tokens < 0:
            raise InputError(f"bad docs-graph settings {self}: vocab_size >= 10, min_df >= 1, 0 < max_df <= 1, "
                             "min_tokens >= 0")

    def key(self) -> str:
        return f"r{READER_VERSION}-{self.level}-v{self.vocab_size}-df{self.min_df}-{self.max_df}-t{self.min_tokens}"


def _pages(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("_") or SKIP_PAGES.match(rel):
            continue
        out.append(rel)
    return out


def _resolve(page: str, href: str) -> tuple[str, str] | None:
    """(target page, fragment) of an internal link, or None for external/asset links."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", href):
        return None
    target, _, frag = href.partition("#")
    if not target:
        return page, frag
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), target))
    return (target, frag) if target.endswith(".html") else None


def parse_docs(root: str | os.PathLike, level: str = "page") -> tuple[list[str], list[str], list[int], list[tuple[int, int]]]:
    """Read every content page under `root` once: (node names, node texts, node page index, directed links)."""
    root = Path(root)
    pages = _pages(root)
    names, texts, page_of, pending = [], [], [], []
    node_of: dict[tuple[str, int], int] = {}  # (page, section index) -> node
    anchors: dict[str, dict[str, int]] = {}
    n_sections: dict[str, int] = {}
    for p_i, page in enumerate(pages):
        parser = _PageParser()
        parser.feed((root / page).read_text(encoding="utf-8", errors="replace"))
        parser.close()
        if not parser.sections:
            continue
        anchors[page], n_sections[page] = parser.anchor_section, len(parser.sections)
        if level == "page":
            node_of.update({(page, s): len(names) for s in range(len(parser.sections))})
            names.append(page)
            texts.append(" ".join(t for s in parser.sections for t in s.text))
            page_of.append(p_i)
        else:
            for s, sec in enumerate(parser.sections):
                node_of[(page, s)] = len(names)
                names.append(f"{page}#{sec.id}" if sec.id else page)
                texts.append(" ".join(sec.text))
                page_of.append(p_i)
        pending += [(page, s, href) for s, href in parser.links]
    links = []
    for page, s, href in pending:
        resolved = _resolve(page, href)
        if resolved is None or resolved[0] not in anchors:
            continue
        target, frag = resolved
        t_sec = anchors[target].get(frag, 0) if frag else min(1, n_sections[target] - 1)  # 0: text before <section>
        src, dst = node_of.get((page, s)), node_of.get((target, t_sec))
        if src is not None and dst is not None:
            links.append((src, dst))
    return names, texts, page_of, links


def load_python_docs_graph(config: DocGraphConfig = DocGraphConfig(), root: str | os.PathLike | None = None,
                           cache: bool = True) -> DocumentNetwork:
    """The Python documentation as a document network (parsed once, then read from the cache)."""
    if root is None:
        roots = python_doc_roots()
        if not roots:
            raise InputError("the Python HTML documentation is not installed: run `apt-get install python3-doc` "
                             "(as root), or pass root=<a Sphinx HTML folder>")
        root = roots[-1]
    root = Path(root)
    if not root.is_dir() or not any(root.glob("*.html")) and not any(root.glob("*/*.html")):
        raise InputError(f"{root} holds no HTML pages: point root at a Sphinx HTML documentation folder")
    tag = hashlib.sha1(f"{os.path.realpath(root)}|{config.key()}".encode()).hexdigest()[:10]
    path = None
    if cache:
        from tenfold.core.io import cache_dir

        path = cache_dir("data", "python-docs-graph") / f"{config.key()}-{tag}.npz"
        if path.is_file():
            try:
                return load_network(path)
            except (InputError, EOFError, OSError, ValueError, zipfile.BadZipFile):
                pass  # a damaged cache entry (e.g. a disk filled mid-write): parse the pages again
    net = _build(root, config)
    if path is not None:
        save_network(net, path)
    return net


def _build(root: Path, config: DocGraphConfig) -> DocumentNetwork:
    from sklearn.feature_extraction.text import CountVectorizer

    names, texts, page_of, links = parse_docs(root, config.level)
    if len(names) < 2:
        raise InputError(f"{root}: fewer than 2 documentation pages found")
    vec = CountVectorizer(stop_words="english", token_pattern=TOKEN, lowercase=True, min_df=config.min_df,
                          max_df=config.max_df, max_features=config.vocab_size)
    counts = vec.fit_transform(texts).tocsr()
    keep = np.flatnonzero(np.asarray(counts.sum(1)).ravel() >= config.min_tokens)
    new_id = np.full(len(names), -1)
    new_id[keep] = np.arange(len(keep))
    edges = np.array([(new_id[a], new_id[b]) for a, b in links if new_id[a] >= 0 and new_id[b] >= 0],
                     dtype=np.int64).reshape(-1, 2)
    folders = [names[i].split("/")[0] if "/" in names[i] else "(top)" for i in keep]
    groups = sorted(set(folders))
    labels = np.array([groups.index(f) for f in folders])
    net = build_network(counts[keep], edges, labels, name=f"python-docs-graph-{config.level}", n_nodes=len(keep))
    net.vocab = list(vec.get_feature_names_out())
    net.node_names = [names[i] for i in keep]
    net.label_names = groups
    net.report.update({"source": str(root), "pages_read": len(set(page_of)), "nodes_dropped_short": int(len(names)
                                                                                                      - len(keep)),
                       "directed_links_read": len(links), "level": config.level})
    return net


def docs_graph_statistics(net: DocumentNetwork) -> dict:
    """What `tenfold data show python-docs-graph` prints."""
    deg = net.degrees()
    return {"nodes": net.n_nodes, "links": net.n_edges, "words": net.n_words, "tokens": int(net.vals.sum()),
            "mean_degree": round(float(deg.mean()), 2), "isolated_nodes": int((deg == 0).sum()),
            "mean_tokens_per_node": round(float(net.vals.sum() / net.n_nodes), 1),
            "classes": len(getattr(net, "label_names", []) or np.unique(net.labels))}


# ---------------------------------------------------------------- DC-SBM with LDA words


def check_generator_sizes(n_nodes: int, n_words: int, topics: tuple[int, ...], doc_length: float,
                          mean_degree: float, dense_counts: bool = False) -> None:
    """Refuse a synthetic network that is not finite or would not fit: one InputError saying what to change."""
    if not all(math.isfinite(float(x)) for x in (doc_length, mean_degree)):
        raise InputError(f"doc_length and mean_degree must be finite numbers, got {doc_length}, {mean_degree}")
    if not 2 <= n_nodes <= MAX_NODES or not 2 <= n_words <= MAX_WORDS:
        raise InputError(f"nodes must be 2..{MAX_NODES:,} and words 2..{MAX_WORDS:,}, got {n_nodes}, {n_words}")
    if not topics or not all(1 <= k <= MAX_TOPICS for k in topics) or len(topics) > 8:
        raise InputError(f"topics must be 1 to 8 layers of 1..{MAX_TOPICS} topics, got {topics}")
    if not 0 < doc_length <= MAX_DOC_LENGTH or n_nodes * doc_length > MAX_TOKENS:
        raise InputError(f"doc_length must be in (0, {MAX_DOC_LENGTH:g}] with nodes x doc_length <= {MAX_TOKENS:.0e} "
                         f"tokens, got {doc_length} for {n_nodes} nodes")
    if not 0 <= mean_degree <= min(MAX_DEGREE, n_nodes - 1):
        raise InputError(f"mean_degree must be in [0, min({MAX_DEGREE:g}, nodes - 1)], got {mean_degree}")
    if dense_counts and n_nodes * n_words > MAX_CELLS:
        raise InputError(f"nodes x words must be at most {MAX_CELLS:.0e} (dense counts), got {n_nodes} x {n_words}")


def sample_dcsbm_lda(n_nodes: int = 600, n_words: int = 500, blocks: int = 6, topics: int = 12,
                     doc_length: float = 80.0, mean_degree: float = 10.0, within: float = 0.8,
                     degree_shape: float = 2.5, alpha: float = 0.3, beta: float = 0.05,
                     seed: int = 0) -> DocumentNetwork:
    """A document network from a degree-corrected SBM with LDA documents (labelled synthetic).

    Links (Karrer & Newman 2011): node i in block g_i (uniform) with degree propensity d_i ~ Pareto
    (shape `degree_shape`, heavy-tailed), normalised to sum 1 in each block; between blocks r, s a
    Poisson(omega_rs) number of links with endpoints drawn in proportion to d (simple graph: repeats
    and self-loops dropped). omega puts a fraction `within` of the N * mean_degree / 2 links inside
    blocks.
    Words (Blei et al. 2003): topics phi_k ~ Dir(beta); block r prefers topics {r, r + B, ...} (mod K):
    theta_i ~ Dir(alpha * (0.1 + 3 * preferred)); length ~ Poisson(doc_length); words ~ Mult(Phi theta_i).
    """
    check_generator_sizes(n_nodes, n_words, (topics,), doc_length, mean_degree, dense_counts=True)
    if n_nodes < 2 * blocks or blocks < 1 or topics < 1 or n_words < 2:
        raise InputError(f"dcsbm-lda needs n_nodes >= 2 * blocks, blocks, topics >= 1, n_words >= 2; got "
                         f"{n_nodes}, {blocks}, {topics}, {n_words}")
    if not (0 <= within <= 1) or not all(math.isfinite(x) and x > 0 for x in (alpha, beta, degree_shape)):
        raise InputError(f"within must be in [0, 1] and alpha, beta, degree_shape finite and > 0, got {within}, "
                         f"{alpha}, {beta}, {degree_shape}")
    rng = np.random.default_rng(seed)
    group = rng.integers(0, blocks, n_nodes)
    d = rng.pareto(degree_shape, n_nodes) + 1.0
    for r in range(blocks):
        members = group == r
        if members.any():
            d[members] /= d[members].sum()
    total = n_nodes * mean_degree / 2
    sizes = np.bincount(group, minlength=blocks).astype(float)
    keys = []
    for r in range(blocks):
        for s in range(r, blocks):
            if r == s:
                lam = total * within * sizes[r] / n_nodes
            else:
                pair = sizes[r] * sizes[s] / max((n_nodes**2 - (sizes**2).sum()) / 2, 1.0)
                lam = total * (1 - within) * pair
            m = rng.poisson(lam)
            if m == 0:
                continue
            pr, ps = np.flatnonzero(group == r), np.flatnonzero(group == s)
            i = rng.choice(pr, size=m, p=d[pr])
            j = rng.choice(ps, size=m, p=d[ps])
            ok = i != j
            keys.append(np.minimum(i, j)[ok] * n_nodes + np.maximum(i, j)[ok])
    key = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
    edges = np.stack([key // n_nodes, key % n_nodes])
    phi = rng.dirichlet(np.full(n_words, beta), size=topics).T  # (V, K)
    prefer = np.zeros((blocks, topics))
    for r in range(blocks):
        prefer[r, np.arange(r % topics, topics, blocks)] = 1.0
    theta = np.stack([rng.dirichlet(alpha * (0.1 + 3.0 * prefer[g])) for g in group])  # (N, K)
    lengths = rng.poisson(doc_length, n_nodes)
    counts = np.stack([rng.multinomial(n, p) for n, p in zip(lengths, np.clip(theta @ phi.T, 0, None), strict=True)])
    net = build_network(counts, edges, group, name=f"dcsbm-lda-{n_nodes}", n_nodes=n_nodes, synthetic=True,
                        truth={"phi": [phi], "theta": [theta]})
    net.vocab = [f"w{v}" for v in range(n_words)]
    return net


class _DocsGraphSpec(DatasetSpec):
    def describe(self) -> dict:
        d = super().describe()
        if self.available():
            d["statistics"] = docs_graph_statistics(load_python_docs_graph())
        return d


register_dataset(_DocsGraphSpec(
    name="python-docs-graph", source="debian package",
    size="454 pages, 4,534 links, 1,000 words (python3.11-doc; live numbers: data show)",
    licence="PSF License (Python documentation)", loader="tenfold.data.docgraph:load_python_docs_graph",
    description="Python 3 HTML docs (Debian python3-doc) as a document network: pages (or sections) as nodes "
                "with their words (code blocks and tables of contents left out), hyperlinks in the main text as "
                "undirected links; labels = top-level folder (library, c-api, reference, ...).",
    available=lambda: bool(python_doc_roots())))
register_dataset(DatasetSpec(
    name="dcsbm-lda", source="generated", size="any size (default 600 documents, 500 words, 6 blocks, 12 topics)",
    licence="generated here", loader="tenfold.data.docgraph:sample_dcsbm_lda",
    description="Synthetic document network: degree-corrected SBM links, LDA words with a topic prior per block "
                "(not the GPGBN model; known topics)."))
