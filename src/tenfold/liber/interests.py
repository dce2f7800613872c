"""UIL, User Interest Learning: the cascade S_i = LLM(prompt(profile, S_{i-1}, B_i)) plus the shift text.

For partition i of a user (in time order) the summary prompt holds the user profile, the previous
summary S_{i-1} ("None" for i = 0) and the partition's behaviors B_i; the shift prompt compares
S_{i-1} with S_i (LIBER's "interest shift" output, [S]; wording is ours, structure from the lineage
code [L], see docs/liber.md). Partitions are processed round by round (partition 0 of every user,
then partition 1, ...) so a batch of prompts can go to the backend at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from tenfold.core.errors import InputError
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


def profile_sentence(user: pd.Series | None) -> str:
    if user is None:
        return "Nothing is known about the user beyond their history."
    parts = [f"{user['age']}-year-old" if "age" in user else "",
             {"M": "male", "F": "female"}.get(str(user.get("gender", "")), ""), str(user.get("occupation", ""))]
    return "The user is a " + " ".join(p for p in parts if p).strip() + "."


def summary_prompt(template: PromptTemplate, profile: str, previous: str | None, behaviors: list[Behavior],
                   catalog: ItemCatalog, heading: str = "Current") -> str:
    """The summary prompt for one partition (or, for KAR, the whole history)."""
    noun = template.item_noun
    return "\n".join([
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
        "point in the current history and the previous summary. If the interests changed, describe the change "
        "and the likely reasons.",
    ])


def shift_prompt(template: PromptTemplate, previous: str, current: str) -> str:
    """The interest-shift prompt: what is new in the current summary against the previous one."""
    return "\n".join([
        f"[Task] {template.domain} interest shift",
        "[Previous interest summary]", previous,
        "[Current interest summary]", current,
        "[Question]",
        "Does the current summary show preferences that differ from the previous one? If so, list them in terms "
        f"of: {', '.join(template.factors)}.",
    ])


@dataclass(frozen=True)
class InterestRecord:
    pid: int
    closed_at: float
    summary: str
    shift: str

    @property
    def text(self) -> str:
        """What the knowledge encoder reads: S_i (+) shift_i."""
        return self.summary + ("\n" + self.shift if self.shift else "")


def learn_interests(partitions: Mapping[str, list[Partition]], generator: TextGenerator, catalog: ItemCatalog,
                    profiles: Mapping[str, str] | None = None, template: PromptTemplate = TEMPLATES["movie"],
                    cascade: bool = True, known: Mapping[str, list[InterestRecord]] | None = None,
                    ) -> dict[str, list[InterestRecord]]:
    """Run UIL over closed partitions; with `known` only partitions not yet summarised are sent.

    cascade=False is the "no cascade" ablation: each partition is summarised on its own, no shift text.
    """
    profiles = profiles or {}
    store = {u: list((known or {}).get(u, [])) for u in partitions}
    rounds = max((len(p) for p in partitions.values()), default=0)
    for r in range(rounds):
        todo = [u for u, parts in partitions.items() if len(parts) > r and len(store[u]) == r]
        if not todo:
            continue
        prev = {u: store[u][r - 1].summary if (cascade and r > 0) else None for u in todo}
        prompts = [summary_prompt(template, profiles.get(u, profile_sentence(None)), prev[u],
                                  list(partitions[u][r].behaviors), catalog) for u in todo]
        summaries = generator.generate(prompts)
        shifts = [""] * len(todo)
        with_prev = [k for k, u in enumerate(todo) if prev[u] is not None]
        if with_prev:
            answers = generator.generate([shift_prompt(template, prev[todo[k]], summaries[k]) for k in with_prev])
            for k, text in zip(with_prev, answers, strict=False):
                shifts[k] = text
        for k, u in enumerate(todo):
            store[u].append(InterestRecord(r, partitions[u][r].closed_at, summaries[k], shifts[k]))
    return store
