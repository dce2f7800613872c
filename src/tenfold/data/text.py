"""Plain-text corpora: the Python documentation (real English, offline) or any user text file.

`python-docs` is the reStructuredText source of the Python 3 documentation that Debian's
`python3-doc` package installs under /usr/share/doc/python3.X/html/_sources (about 11 MB; `make`
installs it when it runs as root with apt). Where that package is absent, `python-topics` is the
smaller (0.5 MB) help-topic text that every CPython ships in `pydoc_data.topics`.
Licence of both: the PSF License (Python documentation).
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tenfold.core.errors import InputError
from tenfold.data.registry import DatasetSpec, register_dataset

PY_DOC_GLOB = "/usr/share/doc/python3*/html/_sources/**/*.txt"


def _python_doc_files() -> list[str]:
    """Each documentation source once: Debian links python3-doc, python3.11-doc, python3-dev... to one
    folder, so the glob sees every file up to eight times (a copy in train and one in valid would leak)."""
    return sorted({os.path.realpath(f) for f in glob.glob(PY_DOC_GLOB, recursive=True)})


@dataclass(frozen=True)
class TextCorpus:
    """Documents split into train and validation at document level (no document in both)."""

    name: str
    train: list[str]
    valid: list[str]

    @property
    def n_chars(self) -> int:
        return sum(map(len, self.train)) + sum(map(len, self.valid))


def _split(name: str, docs: list[str], valid_every: int) -> TextCorpus:
    docs = list(dict.fromkeys(d for d in docs if d.strip()))  # identical documents once, so none is in both splits
    if len(docs) < 2:
        raise InputError(f"corpus {name!r} has fewer than 2 non-empty documents: give more text")
    valid = [d for i, d in enumerate(docs) if i % valid_every == valid_every - 1]
    train = [d for i, d in enumerate(docs) if i % valid_every != valid_every - 1]
    return TextCorpus(name, train, valid)


def load_python_docs(valid_every: int = 20) -> TextCorpus:
    files = _python_doc_files()
    if not files:
        raise InputError("the Python documentation sources are not installed: run `apt-get install python3-doc` "
                         "(as root), or use the corpus 'python-topics' or --text PATH")
    docs = [Path(f).read_text(encoding="utf-8", errors="replace") for f in files]
    return _split("python-docs", docs, valid_every)


def load_python_topics(valid_every: int = 10) -> TextCorpus:
    import pydoc_data.topics as topics

    docs = [topics.topics[k] for k in sorted(topics.topics)]
    return _split("python-topics", docs, valid_every)


def load_text_file(path: str | os.PathLike, valid_fraction: float = 0.05) -> TextCorpus:
    """A user's UTF-8 text (WikiText-2 `wiki.train.raw`, a book...): blank-line paragraphs are documents.

    A folder is read as its `*.txt`/`*.raw` files; when it holds WikiText's `wiki.valid.raw`, that file
    is the validation split.
    """
    path = Path(path)
    if path.is_dir():
        train_f, valid_f = path / "wiki.train.raw", path / "wiki.valid.raw"
        if train_f.is_file() and valid_f.is_file():
            return TextCorpus(path.name, _paragraphs(train_f), _paragraphs(valid_f))
        files = sorted([*path.glob("*.txt"), *path.glob("*.raw")])
        if not files:
            raise InputError(f"{path} holds no .txt or .raw files: point --text at a UTF-8 text file")
        docs = [d for f in files for d in _paragraphs(f)]
    elif path.is_file():
        docs = _paragraphs(path)
    else:
        raise InputError(f"text file {path} does not exist: give a UTF-8 text file or folder")
    every = max(2, round(1 / max(valid_fraction, 1e-3)))
    return _split(path.name, docs, every)


def _paragraphs(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text (byte {err.start}): convert it with iconv first") from err
    paras = [p for p in text.split("\n\n") if p.strip()]
    # merge small paragraphs into ~4 kB documents so the split is not too fine-grained
    docs, cur = [], ""
    for p in paras:
        cur += p + "\n\n"
        if len(cur) > 4000:
            docs.append(cur)
            cur = ""
    if cur:
        docs.append(cur)
    return docs


def load_corpus(name_or_path: str | os.PathLike | None = None) -> TextCorpus:
    """'python-docs', 'python-topics', a path, or None for the best installed default."""
    if name_or_path is None:
        return load_python_docs() if _python_doc_files() else load_python_topics()
    if name_or_path == "python-docs":
        return load_python_docs()
    if name_or_path == "python-topics":
        return load_python_topics()
    return load_text_file(name_or_path)


register_dataset(DatasetSpec(
    name="python-docs", source="debian package", size="497 files, ~11 MB (python3.11-doc)",
    licence="PSF License (Python documentation)", loader="tenfold.data.text:load_python_docs",
    description="reST sources of the Python 3 docs from Debian's python3-doc; the tiny-lm training corpus.",
    available=lambda: bool(_python_doc_files())))
register_dataset(DatasetSpec(
    name="python-topics", source="installed package", size="~0.5 MB (pydoc_data.topics)",
    licence="PSF License (Python documentation)", loader="tenfold.data.text:load_python_topics",
    description=f"help-topic text shipped with CPython {sys.version_info.major}.{sys.version_info.minor}; "
                "the fallback corpus when python3-doc is absent."))
register_dataset(DatasetSpec(
    name="text:PATH", source="user path", size="any", licence="the user's",
    loader="tenfold.data.text:load_text_file",
    description="any UTF-8 text file or folder (WikiText-2 raw files are recognised), e.g. --text PATH."))
