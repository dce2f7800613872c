"""WhoIsWho IND (incorrect assignment detection, KDD Cup 2024) in its real JSON format, plus a seeded
generator that writes the same files.

Real files (point `--data DIR` at a folder holding them):
  train_author.json                     {aid: {name, normal_data: [pid], outliers: [pid]}}
  ind_valid_author.json                 {aid: {name, papers: [pid]}}          (labels hidden)
  ind_valid_author_ground_truth.json    {aid: {normal_data: [pid], outliers: [pid]}}   (optional)
  ind_test_author_filter_public.json    {aid: {name, papers: [pid]}}          (optional)
  pid_to_info_all.json                  {pid: {title, authors: [{name, org}], abstract, keywords, venue, year}}
Submission: {aid: {pid: score}} with score = probability that the paper is correctly assigned.

Bad input (each one is either a documented fallback recorded in `IndData.warnings`, or an InputError
naming the record; `strict=True` turns every fallback into an error):
  - a paper id listed for an author but absent from pid_to_info_all -> kept as an empty paper
    (no title, no authors) so it still gets a score;
  - a paper with no authors, or an author entry with no org -> empty list / empty org string;
  - duplicate keys in a JSON object -> InputError naming the key (never silently overwritten);
  - a pid listed twice for one author -> kept once; a pid both normal and outlier -> InputError;
  - non-UTF-8 bytes -> decoded with U+FFFD replacement, the records containing them are named.
An author whose name does not appear in a paper's author list is handled by the graph builder
(nothing is removed from that paper's co-author list; see tenfold.ind.graph).

The generator (`generate_ind`) is synthetic: every number measured on it is labelled synthetic.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tenfold.core.errors import InputError
from tenfold.core.io import atomic_write_json
from tenfold.data.registry import DatasetSpec, register_dataset

TRAIN_FILE = "train_author.json"
VALID_FILE = "ind_valid_author.json"
VALID_TRUTH_FILE = "ind_valid_author_ground_truth.json"
TEST_FILE = "ind_test_author_filter_public.json"
PAPERS_FILE = "pid_to_info_all.json"


@dataclass
class Author:
    """One profile: the name, its assigned papers and, when known, which of them are outliers."""

    aid: str
    name: str
    papers: list[str]
    outliers: set[str] | None = None  # None when labels are hidden

    @property
    def labels(self) -> dict[str, int] | None:
        """pid -> 1 (normal, correctly assigned) / 0 (outlier), as in the official evaluation."""
        if self.outliers is None:
            return None
        return {p: int(p not in self.outliers) for p in self.papers}


@dataclass
class IndData:
    """Papers (pid -> info) and the author splits that are present in the folder."""

    papers: dict[str, dict]
    train: dict[str, Author]
    valid: dict[str, Author] = field(default_factory=dict)
    test: dict[str, Author] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: str = ""

    def split(self, name: str) -> dict[str, Author]:
        if name not in ("train", "valid", "test"):
            raise InputError(f"split must be train, valid or test, got {name!r}")
        authors = getattr(self, name)
        if not authors:
            raise InputError(f"{self.source}: split {name!r} is empty or its file is missing")
        return authors


def _no_duplicates(path: Path):
    def hook(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise InputError(f"{path}: duplicate id {key!r} in one JSON object; ids must be unique "
                                 "(remove or rename the duplicate record)")
            seen.add(key)
        return dict(pairs)
    return hook


def _read(path: Path, warnings: list[str]) -> dict:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
        bad = False
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        bad = True
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates(path))
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}); fix or re-export the file") from err
    if not isinstance(obj, dict):
        raise InputError(f"{path}: top level must be a JSON object keyed by id")
    if bad:
        names = [k for k, v in obj.items() if "\ufffd" in json.dumps(v, ensure_ascii=False) or "\ufffd" in k]
        warnings.append(f"{path.name}: non-UTF-8 bytes replaced by U+FFFD in records {names[:10]}"
                        + (f" and {len(names) - 10} more" if len(names) > 10 else ""))
    return obj


def _clean_paper(pid: str, info, warnings: list[str]) -> dict:
    if not isinstance(info, dict):
        raise InputError(f"{PAPERS_FILE}: paper {pid!r} is not an object")
    authors = info.get("authors") or []
    if not isinstance(authors, list):
        raise InputError(f"{PAPERS_FILE}: paper {pid!r} has 'authors' that is not a list")
    clean = []
    for a in authors:
        if isinstance(a, str):
            a = {"name": a}
        if not isinstance(a, dict):
            raise InputError(f"{PAPERS_FILE}: paper {pid!r} has an author entry that is not an object: {a!r}")
        clean.append({"name": str(a.get("name") or ""), "org": str(a.get("org") or "")})
    keywords = info.get("keywords") or []
    return {
        "id": pid, "title": str(info.get("title") or ""), "authors": clean,
        "abstract": str(info.get("abstract") or ""),
        "keywords": [str(k) for k in keywords] if isinstance(keywords, list) else [str(keywords)],
        "venue": str(info.get("venue") or ""), "year": info.get("year") or 0,
    }


def _dedupe(aid: str, pids, what: str, warnings: list[str], strict: bool) -> list[str]:
    if not isinstance(pids, list):
        raise InputError(f"author {aid!r}: {what!r} must be a list of paper ids")
    out, seen = [], set()
    for p in pids:
        p = str(p)
        if p in seen:
            if strict:
                raise InputError(f"author {aid!r}: paper {p!r} listed twice in {what!r}")
            warnings.append(f"author {aid!r}: paper {p!r} listed twice in {what!r}; kept once")
            continue
        seen.add(p)
        out.append(p)
    return out


def _authors(obj: dict, file: str, truth: dict | None, labelled: bool, warnings: list[str], strict: bool) -> dict[str, Author]:
    out = {}
    for aid, rec in obj.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("name"), str):
            raise InputError(f"{file}: author {aid!r} lacks a string 'name'")
        if labelled or (truth is not None and aid in truth):
            src = rec if labelled else truth[aid]
            normal = _dedupe(aid, src.get("normal_data", []), "normal_data", warnings, strict)
            outl = _dedupe(aid, src.get("outliers", []), "outliers", warnings, strict)
            both = set(normal) & set(outl)
            if both:
                raise InputError(f"{file}: author {aid!r} lists paper {sorted(both)[0]!r} both as normal and as outlier")
            papers = normal + outl
            if not labelled:  # keep the order of the unlabelled list; labels from the ground truth
                listed = _dedupe(aid, rec.get("papers", []), "papers", warnings, strict)
                missing = set(listed) ^ set(papers)
                if missing:
                    raise InputError(f"{file}: author {aid!r}: ground truth and paper list differ on {sorted(missing)[:3]}")
                papers = listed
            out[aid] = Author(aid, rec["name"], papers, set(outl))
        else:
            out[aid] = Author(aid, rec["name"], _dedupe(aid, rec.get("papers", []), "papers", warnings, strict))
    return out


def load_ind(folder: str | os.PathLike, strict: bool = False) -> IndData:
    """Load the IND JSON files from `folder` (see the module docstring for names and fallbacks)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; pass a folder holding {PAPERS_FILE} and {TRAIN_FILE} "
                         "(or run `tenfold ind generate --out DIR`)")
    if not (folder / PAPERS_FILE).is_file():
        raise InputError(f"{folder} lacks {PAPERS_FILE} (the paper metadata file of WhoIsWho IND)")
    warnings: list[str] = []
    papers = {pid: _clean_paper(pid, info, warnings) for pid, info in _read(folder / PAPERS_FILE, warnings).items()}
    truth = _read(folder / VALID_TRUTH_FILE, warnings) if (folder / VALID_TRUTH_FILE).is_file() else None
    splits = {}
    for name, file, labelled in (("train", TRAIN_FILE, True), ("valid", VALID_FILE, False), ("test", TEST_FILE, False)):
        path = folder / file
        splits[name] = _authors(_read(path, warnings), file, truth, labelled, warnings, strict) if path.is_file() else {}
    if not splits["train"] and not splits["valid"] and not splits["test"]:
        raise InputError(f"{folder} holds none of {TRAIN_FILE}, {VALID_FILE}, {TEST_FILE}")
    for split in splits.values():
        for a in split.values():
            for p in a.papers:
                if p not in papers:
                    if strict:
                        raise InputError(f"author {a.aid!r}: paper {p!r} is not in {PAPERS_FILE}")
                    warnings.append(f"author {a.aid!r}: paper {p!r} is not in {PAPERS_FILE}; scored as an empty paper")
                    papers[p] = _clean_paper(p, {}, warnings)
    for pid, info in papers.items():
        if not info["authors"]:
            warnings.append(f"paper {pid!r} has no authors; its co-author and org edges are empty")
    return IndData(papers, splits["train"], splits["valid"], splits["test"], warnings, str(folder))


def write_submission(path: str | os.PathLike, scores: dict[str, dict[str, float]]) -> Path:
    """Write `{aid: {pid: score}}`, the official submission format."""
    return atomic_write_json(path, {a: {p: float(s) for p, s in d.items()} for a, d in scores.items()})


# ------------------------------------------------------------------------------------------------
# Seeded generator

# Topic vocabularies of ordinary English words (so a byte-level BPE tokenises them compactly).
TOPICS = (
    "graph node edge network link community random walk spectral cluster embedding neighbor",
    "image pixel vision camera object detection segmentation scene depth video texture shape",
    "language text word sentence translation parsing speech dialogue grammar token corpus meaning",
    "protein gene cell molecule sequence enzyme tissue genome binding structure folding virus",
    "robot control motion sensor planning arm navigation vehicle trajectory feedback drone force",
    "market price trade finance risk stock bank credit economy auction demand portfolio",
    "energy power battery solar grid wind fuel heat voltage storage charge thermal",
    "query database index storage table join transaction cache memory disk record schema",
    "security attack privacy key cipher malware password trust audit threat defense signature",
    "quantum spin photon laser optical field wave particle atom electron crystal lattice",
    "climate ocean rain soil forest carbon water river ice weather season drought",
    "patient clinical drug disease health hospital tumor therapy brain heart blood diagnosis",
)
GENERAL = ("learning model method analysis system approach based novel efficient study using new deep "
           "towards framework design evaluation improved robust fast large scale data").split()
GIVEN = "wei jing li yan hui xin ming jun lei fang hong ying tao bin chen anna maria john david paul".split()
FAMILY = "wang zhang liu chen yang zhao huang zhou wu xu sun ma zhu hu guo lin he luo smith kim".split()
ORG_WORDS = ("university institute college laboratory school academy center department").split()
CITIES = "beijing shanghai nanjing wuhan tianjin boston austin paris berlin tokyo seoul delhi oslo lima".split()
VENUE_KINDS = ("journal of", "proceedings of", "transactions on", "conference on", "letters in", "review of")
PID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape and difficulty of the generated IND data.

    Shape: authors, papers per author, outlier shares (about 12 % of papers are outliers in the real
    training set; a few authors have none, a few have many).

    Difficulty: the real errors are papers of same-name people in nearby fields, so an outlier's
    author (another person with the identical name) overlaps with the true person, each knob a
    probability:
      topic_overlap    the other person shares one of the true person's two topics (its titles on
                       that topic use the same vocabulary)
      venue_share      an outlier paper appears in one of the true person's venues
      coauthor_share   an outlier paper has 1-2 of the true person's collaborators among its authors
      org_share        the name on an outlier paper carries one of the true person's organisations
    and the true person's own papers are not all typical:
      cold_positive_p  a normal paper with only new co-authors (no collaborator from the pool)
      side_topic_p     a normal paper on a topic outside the person's two topics
      title_noise      share of title words from a field-neutral vocabulary (learning, model, ...)
    Paper ids are random 8-character strings and every list is shuffled, so no id or order says
    which papers are outliers.
    """

    n_train: int = 120
    n_valid: int = 100
    min_papers: int = 8
    max_papers: int = 20
    outlier_rate: tuple[float, float] = (0.10, 0.25)  # typical per-author outlier share
    zero_outlier_share: float = 0.05  # authors with no outliers (weight 0 in the metric)
    heavy_outlier_share: float = 0.10  # authors with 35-50% outliers
    topic_overlap: float = 0.7
    venue_share: float = 0.4
    coauthor_share: float = 0.4
    org_share: float = 0.3
    cold_positive_p: float = 0.3
    side_topic_p: float = 0.15
    title_noise: float = 0.4
    name_pool: int = 0  # distinct names; 0 -> 97% of the number of authors (same-name collisions)
    collaborators: tuple[int, int] = (8, 24)

    def __post_init__(self) -> None:
        for name in ("zero_outlier_share", "heavy_outlier_share", "topic_overlap", "venue_share", "coauthor_share",
                     "org_share", "cold_positive_p", "side_topic_p", "title_noise"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"GeneratorConfig.{name} is a probability in [0, 1], got {value}")
        if self.n_train < 1 or self.n_valid < 0 or not 2 <= self.min_papers <= self.max_papers:
            raise InputError("GeneratorConfig needs n_train >= 1, n_valid >= 0 and 2 <= min_papers <= max_papers, got "
                             f"{self.n_train}, {self.n_valid}, {self.min_papers}, {self.max_papers}")


class _Person:
    """One real person behind a name: topics, collaborators, drifting organisations, venues."""

    def __init__(self, rng: np.random.Generator, name: str, cfg: GeneratorConfig, topics: tuple[int, int]):
        self.name = name
        self.topics = topics
        self.topic_w = rng.dirichlet([2.0, 1.0])
        n_col = int(rng.integers(*cfg.collaborators))
        self.collab = [_person_name(rng) for _ in range(n_col)]
        self.collab_org = [_org(rng) for _ in range(n_col)]
        self.collab_w = 1.0 / np.arange(1, n_col + 1) ** 1.1  # power-law reuse
        self.collab_w /= self.collab_w.sum()
        self.orgs = [_org(rng) for _ in range(int(rng.integers(1, 4)))]  # drifting over years
        self.venues = {t: [_venue(rng, t) for _ in range(3)] for t in topics}
        self.start = int(rng.integers(1995, 2015))

    def collaborator(self, rng: np.random.Generator) -> dict:
        j = min(len(self.collab) - 1, int(np.searchsorted(np.cumsum(self.collab_w), rng.random())))
        return {"name": self.collab[j], "org": self.collab_org[j]}

    def paper(self, rng: np.random.Generator, cfg: GeneratorConfig, cold: bool = False, side: bool = False) -> dict:
        year = int(min(2024, self.start + rng.integers(0, 12)))
        t = int(rng.integers(len(TOPICS))) if side else self.topics[int(rng.random() > self.topic_w[0])]
        words = _TOPIC_WORDS[t]
        n = int(rng.integers(4, 9))
        noise = rng.random(n) < cfg.title_noise
        title = [GENERAL[i] if z else words[j] for z, i, j in
                 zip(noise, rng.integers(len(GENERAL), size=n), rng.integers(len(words), size=n), strict=True)]
        org = self.orgs[min(len(self.orgs) - 1, (year - self.start) * len(self.orgs) // 12)]
        n_co = int(rng.integers(1, 6))
        if cold:
            authors = [{"name": _person_name(rng), "org": _org(rng)} for _ in range(n_co)]
        else:
            idx = rng.choice(len(self.collab), size=min(n_co, len(self.collab)), replace=False, p=self.collab_w)
            authors = [{"name": self.collab[i], "org": self.collab_org[i]} for i in idx]
        authors.insert(int(rng.integers(0, len(authors) + 1)), {"name": self.name, "org": org})
        venue = self.venues[t][int(rng.integers(3))] if t in self.venues else _venue(rng, t)
        return {"title": " ".join(title).capitalize(), "authors": authors,
                "abstract": " ".join(words[i] for i in rng.integers(len(words), size=20)),
                "keywords": [words[i] for i in rng.permutation(len(words))[:3]],
                "venue": venue, "year": year, "topic": t}


_TOPIC_WORDS = tuple(tuple(t.split()) for t in TOPICS)


def _pick(rng: np.random.Generator, items) -> str:
    return items[int(rng.integers(len(items)))]


def _person_name(rng: np.random.Generator) -> str:
    return f"{_pick(rng, GIVEN)} {_pick(rng, FAMILY)}"


def _org(rng: np.random.Generator) -> str:
    return f"{_pick(rng, ORG_WORDS)} of {_pick(rng, _TOPIC_WORDS[int(rng.integers(len(TOPICS)))])}, {_pick(rng, CITIES)}"


def _venue(rng: np.random.Generator, topic: int) -> str:
    words = _TOPIC_WORDS[topic]
    return f"{_pick(rng, VENUE_KINDS)} {_pick(rng, words)} {_pick(rng, words)}".title()


def _two_topics(rng: np.random.Generator, share: tuple[int, int] | None = None) -> tuple[int, int]:
    """Two distinct topics; with `share`, the first is one of those (a same-name person in a nearby field)."""
    first = _pick(rng, share) if share is not None else int(rng.integers(len(TOPICS)))
    second = _pick(rng, [t for t in range(len(TOPICS)) if t != first and (share is None or t not in share)])
    return first, second


def _outlier_paper(rng: np.random.Generator, cfg: GeneratorConfig, other: _Person, true: _Person, stats: dict) -> dict:
    """A paper of `other` (same name as `true`) with the overlaps the difficulty knobs ask for."""
    info = other.paper(rng, cfg)
    me = next(a for a in info["authors"] if a["name"] == other.name)
    if rng.random() < cfg.venue_share:
        t = info["topic"] if info["topic"] in true.venues else _pick(rng, true.topics)
        info["venue"] = _pick(rng, true.venues[t])
        stats["shared_venue"] += 1
    if rng.random() < cfg.coauthor_share:
        for _ in range(int(rng.integers(1, 3))):
            info["authors"].insert(int(rng.integers(0, len(info["authors"]) + 1)), true.collaborator(rng))
        stats["shared_coauthor"] += 1
    if rng.random() < cfg.org_share:
        me["org"] = _pick(rng, true.orgs)
        stats["shared_org"] += 1
    stats["shared_topic"] += int(info["topic"] in true.topics)
    return info


def _new_pid(rng: np.random.Generator, taken) -> str:
    while True:
        pid = "".join(PID_ALPHABET[i] for i in rng.integers(len(PID_ALPHABET), size=8))
        if pid not in taken:
            return pid


def generate_ind(folder: str | os.PathLike, seed: int = 0, config: GeneratorConfig | None = None) -> dict:
    """Write train/valid(+ground truth)/pid_to_info_all JSON files into `folder`; return their statistics.

    Each profile belongs to one true person; its outliers are papers of 1-3 other people with the
    identical name string, who overlap with the true person as `GeneratorConfig` sets out.
    """
    cfg = config or GeneratorConfig()
    rng = np.random.default_rng(seed)
    n_auth = cfg.n_train + cfg.n_valid
    pool = cfg.name_pool or max(1, int(round(0.97 * n_auth)))
    names: list[str] = []
    while len(set(names)) < pool:
        names.append(_person_name(rng))
    names = list(dict.fromkeys(names))[:pool]
    papers: dict[str, dict] = {}
    profiles = []
    stats = {"shared_topic": 0, "shared_venue": 0, "shared_coauthor": 0, "shared_org": 0, "cold_positives": 0,
             "side_topic_positives": 0, "outliers": 0, "papers": 0}
    for a in range(n_auth):
        name = names[a % pool] if a < pool else _pick(rng, names)
        true = _Person(rng, name, cfg, _two_topics(rng))
        others = [_Person(rng, name, cfg, _two_topics(rng, true.topics if rng.random() < cfg.topic_overlap else None))
                  for _ in range(int(rng.integers(1, 4)))]
        n = int(rng.integers(cfg.min_papers, cfg.max_papers + 1))
        u = rng.random()
        if u < cfg.zero_outlier_share:
            rate = 0.0
        elif u < cfg.zero_outlier_share + cfg.heavy_outlier_share:
            rate = float(rng.uniform(0.35, 0.5))
        else:
            rate = float(rng.uniform(*cfg.outlier_rate))
        n_out = int(round(rate * n))
        normal, outl = [], []
        for _ in range(n - n_out):
            cold, side = bool(rng.random() < cfg.cold_positive_p), bool(rng.random() < cfg.side_topic_p)
            stats["cold_positives"] += cold
            stats["side_topic_positives"] += side
            pid = _new_pid(rng, papers)
            papers[pid] = true.paper(rng, cfg, cold=cold, side=side)
            normal.append(pid)
        for _ in range(n_out):
            pid = _new_pid(rng, papers)
            papers[pid] = _outlier_paper(rng, cfg, others[int(rng.integers(len(others)))], true, stats)
            outl.append(pid)
        stats["outliers"] += n_out
        stats["papers"] += n
        profiles.append((name, normal, outl))

    order = rng.permutation(n_auth)
    train, valid, truth, aids = {}, {}, {}, set()
    for rank, i in enumerate(order.tolist()):
        name, normal, outl = profiles[i]
        aid = _new_pid(rng, aids)  # author ids are random too
        aids.add(aid)
        if rank < cfg.n_train:
            train[aid] = {"name": name, "normal_data": normal, "outliers": outl}
        else:
            mixed = normal + outl
            valid[aid] = {"name": name, "papers": [mixed[j] for j in rng.permutation(len(mixed))]}
            truth[aid] = {"normal_data": normal, "outliers": outl}
    folder = Path(folder)
    shuffled = list(papers)
    shuffled = [shuffled[j] for j in rng.permutation(len(shuffled))]
    for info in papers.values():
        info.pop("topic")
    atomic_write_json(folder / PAPERS_FILE, {pid: {"id": pid, **papers[pid]} for pid in shuffled})
    atomic_write_json(folder / TRAIN_FILE, train)
    atomic_write_json(folder / VALID_FILE, valid)
    atomic_write_json(folder / VALID_TRUTH_FILE, truth)
    stats.update(authors=n_auth, train_authors=len(train), valid_authors=len(valid), distinct_names=len(set(names)),
                 outlier_share=round(stats["outliers"] / max(1, stats["papers"]), 4), synthetic=True, seed=seed,
                 config=asdict(cfg))
    atomic_write_json(folder / "generator.json", stats)
    return stats


register_dataset(DatasetSpec(
    name="whoiswho-ind", source="user path",
    size="real: 779 train authors, 145k papers; generated: 220 authors, ~3,700 papers (quick default)",
    licence="WhoIsWho: ODC-BY (AMiner); the generated set is ours (synthetic)",
    loader="tenfold.data.whoiswho:load_ind",
    description="WhoIsWho IND JSON files from a user folder (--data DIR); `tenfold ind generate` writes a "
                "seeded synthetic set in the same format (results on it are labelled synthetic)."))
register_dataset(DatasetSpec(
    name="whoiswho-ind-synthetic", source="generated", size="configurable; quick default 220 authors",
    licence="ours (synthetic)", loader="tenfold.data.whoiswho:generate_ind",
    description="Seeded generator of IND-format data: same-name people in nearby fields (shared topics, "
                "venues, collaborators, orgs), collaborator pools, drifting orgs, cold and side-topic positives, "
                "random ids."))
