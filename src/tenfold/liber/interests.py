"""UIL, User Interest Learning: the cascade S_i = LLM(prompt(profile, S_{i-1}, B_i)).

For partition i of a user (in time order) the prompt holds the user profile, the previous summary
S_{i-1} ("None" for i = 0) and the partition's behaviors B_i, and asks for the preference analysis
*and* the interest shift against S_{i-1} in one answer (HiT-LBM, forked from the LIBER code, folds
the shift question into the summary prompt [L]; LIBER describes both outputs [S]). With `fields=True`
the answer must end with the structured interest fields as one JSON object (`InterestFields`): genre
preference scores, rating statistics and a shift indicator. They are validated; a malformed answer
is asked again (a retry prompt, cached like any other) and, after the retries, a clear error.

Partitions are processed round by round (partition 0 of every user, then partition 1, ...) so a
batch of prompts can go to the backend at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tenfold.core.errors import BackendError, InputError
from tenfold.liber.llm import TextGenerator
from tenfold.liber.partition import Behavior, Partition


@dataclass(frozen=True)
class PromptTemplate:
    """A domain's wording; the factor list is data (lineage factor lists, [L])."""

    domain: str
    item_noun: str
    factors: tuple[str, ...]


TEMPLATES = {
    "movie": PromptTemplate("movie", "movie", ("genre", "director/actors", "time period/country", "character",
                                               "plot/theme", "mood/tone", "critical acclaim/award",
                                               "production quality", "soundtrack")),
    "book": PromptTemplate("book", "book", ("genre", "author", "writing style", "theme", "setting",
                                            "length and complexity", "time period", "literary quality",
                                            "critical acclaim")),
    "music": PromptTemplate("music", "song", ("genre", "artist", "era", "mood", "tempo/energy", "instrumentation",
                                              "language", "popularity", "lyrics/theme")),
}


@dataclass(frozen=True)
class ItemCatalog:
    """item_id -> (title, year or '', genres) from an atomic `.item` table."""

    titles: Mapping[str, str]
    years: Mapping[str, str]
    genres: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_frame(cls, item: pd.DataFrame | None) -> ItemCatalog:
        if item is None:
            raise InputError("the dataset has no .item file: LIBER's prompts need item titles and categories")
        ids = item["item_id"].astype(str).tolist()
        title_col = next((c for c in ("movie_title", "title", "book_title", "track_name") if c in item.columns), None)
        genre_col = next((c for c in ("class", "genre", "categories", "category") if c in item.columns), None)
        year_col = next((c for c in ("release_year", "year") if c in item.columns), None)
        titles = item[title_col].astype(str).tolist() if title_col else [f"item {i}" for i in ids]
        years = item[year_col].astype(str).tolist() if year_col else [""] * len(ids)
        genres = [tuple(str(g).split()) or ("unknown",) for g in item[genre_col]] if genre_col else [("unknown",)] * len(ids)
        return cls(dict(zip(ids, titles, strict=False)), dict(zip(ids, years, strict=False)), dict(zip(ids, genres, strict=False)))

    @property
    def genre_names(self) -> list[str]:
        return sorted({g for gs in self.genres.values() for g in gs})

    def behaviors(self, item_ids, timestamps, ratings) -> list[Behavior]:
        """Behaviors for one user's rows; unknown item ids are an input error."""
        out = []
        for item, t, r in zip(item_ids, timestamps, ratings, strict=False):
            item = str(item)
            if item not in self.genres:
                raise InputError(f"item id {item!r} is not in the item table: fix the .inter file or add the item")
            out.append(Behavior(item, float(t), None if r is None or r != r else float(r), self.genres[item]))
        return out

    def line(self, b: Behavior) -> str:
        year = self.years.get(b.item_id, "")
        year = f" ({year})" if year.isdigit() and len(year) == 4 else ""
        rating = "unknown" if b.rating is None else f"{b.rating:g}"
        return f"- {self.titles.get(b.item_id, b.item_id)}{year} | genres: {', '.join(b.genres)} | rating: {rating}/5"


# ML-1M stores age groups by their lower bound (GroupLens README); ML-100K stores ages.
ML1M_AGE_GROUPS = {"1": "under 18", "18": "18-24", "25": "25-34", "35": "35-44", "45": "45-49", "50": "50-55",
                   "56": "56 or older"}


def profile_sentence(user: pd.Series | None, age_groups: bool = False) -> str:
    if user is None:
        return "Nothing is known about the user beyond their history."
    age = str(user["age"]) if "age" in user else ""
    if age:
        age = f"aged {ML1M_AGE_GROUPS.get(age, age)}" if age_groups else f"{age}-year-old"
    parts = [age, {"M": "male", "F": "female"}.get(str(user.get("gender", "")), ""), str(user.get("occupation", ""))]
    words = " ".join(p for p in parts if p).strip()
    return f"The user is a {words}." if words else "Nothing is known about the user beyond their history."


# ---------------------------------------------------------------- structured interest fields

FIELDS_FORMAT = (
    "After the analysis, end the answer with one JSON object on its own line, with exactly these keys: "
    '"genre_scores" (every category in the current history mapped to a preference from -1, dislikes, to 1, likes), '
    '"mean_rating" (the mean rating in the current history, 1 to 5, or null if unknown), '
    '"liked_share" (the share of the current history rated 4 or more, 0 to 1), '
    '"shift" (how far the interests moved from the previous summary: 0 the same, 1 completely new; 0 if there is none).'
)


class MalformedFields(ValueError):
    """An answer without a valid interest-fields JSON object (the message says what is wrong)."""


@dataclass(frozen=True)
class InterestFields:
    """The structured part of one partition's interests (the JSON the prompt asks for)."""

    genre_scores: Mapping[str, float] = field(default_factory=dict)
    mean_rating: float | None = None
    liked_share: float = 0.0
    shift: float = 0.0

    KEYS = ("genre_scores", "mean_rating", "liked_share", "shift")

    def to_dict(self) -> dict:
        return {"genre_scores": dict(self.genre_scores), "mean_rating": self.mean_rating,
                "liked_share": self.liked_share, "shift": self.shift}

    @classmethod
    def from_dict(cls, d) -> InterestFields:
        """Validate a decoded JSON object; raise MalformedFields naming the first problem."""
        if not isinstance(d, dict):
            raise MalformedFields("the JSON is not an object")
        missing = [k for k in cls.KEYS if k not in d]
        if missing:
            raise MalformedFields(f"the JSON object lacks {', '.join(missing)}")
        scores = d["genre_scores"]
        if not isinstance(scores, dict):
            raise MalformedFields("genre_scores is not an object of category -> number")
        for name, value in scores.items():
            _number(value, f"genre_scores[{name!r}]", -1.0, 1.0)
        mean = d["mean_rating"]
        if mean is not None:
            _number(mean, "mean_rating", 1.0, 5.0)
        _number(d["liked_share"], "liked_share", 0.0, 1.0)
        _number(d["shift"], "shift", 0.0, 1.0)
        return cls({str(k): float(v) for k, v in scores.items()}, None if mean is None else float(mean),
                   float(d["liked_share"]), float(d["shift"]))

    def vector(self, genres: Sequence[str]) -> np.ndarray:
        """(len(genres) + 4,): genre scores (matched case-insensitively; absent = 0), (mean - 3) / 2,
        a has-mean flag, the liked share and the shift."""
        lower = {k.lower(): v for k, v in self.genre_scores.items()}
        head = [lower.get(g.lower(), 0.0) for g in genres]
        mean = 0.0 if self.mean_rating is None else (self.mean_rating - 3.0) / 2.0
        return np.array(head + [mean, float(self.mean_rating is not None), self.liked_share, self.shift], np.float32)


def _number(value, name: str, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MalformedFields(f"{name} is {value!r}, not a number")
    if not lo <= value <= hi:
        raise MalformedFields(f"{name} = {value} is outside [{lo:g}, {hi:g}]")


def split_answer(text: str) -> tuple[str, InterestFields]:
    """(prose, fields) from an answer that ends with a JSON object; MalformedFields if it has none."""
    decoder = json.JSONDecoder()
    last_error = "no JSON object in the answer"
    start = text.rfind("{")
    while start >= 0:
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.rfind("{", 0, start)
            continue
        if isinstance(obj, dict) and "genre_scores" in obj:
            fields = InterestFields.from_dict(obj)  # raises with the reason
            prose = (text[:start] + text[end:]).replace("```json", "").replace("```", "").strip()
            return prose, fields
        last_error = "the last JSON object has no genre_scores"
        start = text.rfind("{", 0, start)
    raise MalformedFields(last_error)


# ---------------------------------------------------------------- prompts


def summary_prompt(template: PromptTemplate, profile: str, previous: str | None, behaviors: list[Behavior],
                   catalog: ItemCatalog, heading: str = "Current", fields: bool = True) -> str:
    """The prompt for one partition (or, for KAR, the whole history): preferences, shift, and fields."""
    noun = template.item_noun
    lines = [
        f"[Task] {template.domain} interest summary",
        "[User profile]",
        f"{profile} Each history line gives the {noun} title, its categories and the user's rating; "
        "a rating of 4 or more means the user liked it, below 4 that they did not.",
        "[Previous interest summary]",
        previous if previous else "None",
        f"[{heading} {noun} history]",
        *(catalog.line(b) for b in behaviors),
        "[Question]",
        f"Analyse the user's {template.domain} preferences in terms of: {', '.join(template.factors)}. Ground each "
        "point in the current history and the previous summary. Then say how the interests shifted against the "
        "previous summary (new likes, dropped likes) and the likely reasons.",
    ]
    if fields:
        lines += ["[Answer format]", FIELDS_FORMAT]
    return "\n".join(lines)


def retry_prompt(prompt: str, attempt: int, problem: str) -> str:
    """The prompt asked again after an answer without valid fields (a new prompt, so it is cached too)."""
    return (f"{prompt}\n[Retry {attempt}]\nThe previous answer to this prompt was not usable ({problem}). "
            "Answer again and end with the JSON object exactly as described.")


@dataclass(frozen=True)
class InterestRecord:
    """One partition's interests: the prose (S_i with its shift text) and the structured fields."""

    pid: int
    closed_at: float
    text: str
    fields: InterestFields | None = None

    def to_dict(self) -> dict:
        return {"pid": self.pid, "closed_at": self.closed_at, "text": self.text,
                "fields": None if self.fields is None else self.fields.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> InterestRecord:
        fields = None if d.get("fields") is None else InterestFields.from_dict(d["fields"])
        return cls(int(d["pid"]), float(d["closed_at"]), str(d["text"]), fields)


def ask(generator: TextGenerator, prompts: list[str], labels: list[str], fields: bool = True, retries: int = 2,
        ) -> list[tuple[str, InterestFields | None]]:
    """Generate answers; with `fields`, re-ask (up to `retries` times) those without valid fields.

    Every answer, usable or not, goes through the generator (and its cache), so a rerun repeats the
    same retries from the cache without new calls. `labels` name each prompt in the error message.
    """
    answers = generator.generate(prompts)
    if not fields:
        return [(a.strip(), None) for a in answers]
    out: list[tuple[str, InterestFields | None] | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    for attempt in range(retries + 1):
        problems = {}
        for k in todo:
            try:
                out[k] = split_answer(answers[k])
            except MalformedFields as err:
                problems[k] = str(err)
        todo = sorted(problems)
        if not todo:
            break
        if attempt == retries:
            k = todo[0]
            raise BackendError(f"{labels[k]}: no valid interest-fields JSON after {retries + 1} tries (last problem: "
                               f"{problems[k]}; the answer began {answers[k][:60]!r}); {len(todo)} prompt(s) failed "
                               "so. Use a chat-tuned model, or --llm-fields none to use the text alone; "
                               "answers so far are cached")
        again = generator.generate([retry_prompt(prompts[k], attempt + 1, problems[k]) for k in todo])
        for k, text in zip(todo, again, strict=True):
            answers[k] = text
    return out  # type: ignore[return-value]


def learn_interests(partitions: Mapping[str, list[Partition]], generator: TextGenerator, catalog: ItemCatalog,
                    profiles: Mapping[str, str] | None = None, template: PromptTemplate = TEMPLATES["movie"],
                    cascade: bool = True, known: Mapping[str, list[InterestRecord]] | None = None,
                    fields: bool = True, retries: int = 2) -> dict[str, list[InterestRecord]]:
    """Run UIL over closed partitions; with `known` only partitions not yet summarised are sent.

    cascade=False is the "no cascade" ablation: each partition is summarised on its own.
    """
    profiles = profiles or {}
    store = {u: list((known or {}).get(u, [])) for u in partitions}
    rounds = max((len(p) for p in partitions.values()), default=0)
    for r in range(rounds):
        todo = [u for u, parts in partitions.items() if len(parts) > r and len(store[u]) == r]
        if not todo:
            continue
        prompts = [summary_prompt(template, profiles.get(u, profile_sentence(None)),
                                  store[u][r - 1].text if (cascade and r > 0) else None,
                                  list(partitions[u][r].behaviors), catalog, fields=fields) for u in todo]
        answers = ask(generator, prompts, [f"user {u} partition {r}" for u in todo], fields, retries)
        for u, (text, got) in zip(todo, answers, strict=True):
            store[u].append(InterestRecord(r, partitions[u][r].closed_at, text, got))
    return store
