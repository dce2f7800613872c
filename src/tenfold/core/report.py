"""Build `index.md` and a self-contained `index.html` from every `*/result.json` under a folder.

One summary row per method (status, claims that hold / are inconclusive / fail, wall time) and one
section per method with its claims (ours, reference, the interval of the difference, the verdict and
how the interval was made), its metrics as tables (nested metrics become one table per level, never
dict text in a cell), and its PNG plots (embedded in the HTML, linked from the markdown).
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.io import atomic_write_text, read_json
from tenfold.core.results import Result, load_result

MAX_ROWS = 40


@dataclass(frozen=True)
class Expected:
    """A method the report should list even when it has no result (e.g. not implemented yet)."""

    name: str
    title: str
    arxiv: str = ""
    implemented: bool = True


@dataclass
class Entry:
    name: str
    title: str
    arxiv: str
    result: Result | None
    folder: Path | None
    status: str


def collect(folder: Path) -> dict[str, tuple[Result, Path]]:
    """Every reproduce result under `folder`, keyed by method (a corrupted file raises SchemaError)."""
    found: dict[str, tuple[Result, Path]] = {}
    for path in sorted(folder.rglob("result.json")):
        result = load_result(path)
        if result.kind == "reproduce" or result.method not in found:  # a reproduce run outranks a bench
            found[result.method] = (result, path.parent)
    return found


def build_report(folder: str | Path, expected: list[Expected] | None = None) -> tuple[Path, Path]:
    """Write folder/index.md and folder/index.html; return their paths."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of results: pass the folder that `tenfold reproduce --out` wrote")
    found = collect(folder)
    entries: list[Entry] = []
    seen = set()
    for exp in expected or []:
        seen.add(exp.name)
        if exp.name in found:
            result, where = found[exp.name]
            entries.append(Entry(exp.name, exp.title, exp.arxiv, result, where, result.status))
        else:
            status = "not run" if exp.implemented else "not implemented yet"
            entries.append(Entry(exp.name, exp.title, exp.arxiv, None, None, status))
    for name, (result, where) in found.items():
        if name not in seen:
            paper = result.paper or {}
            entries.append(Entry(name, paper.get("title", ""), paper.get("arxiv", ""), result, where, result.status))
    zoo = _zoo_builds(folder)
    md = folder / "index.md"
    page = folder / "index.html"
    atomic_write_text(md, _markdown(entries, folder, zoo))
    atomic_write_text(page, _html(entries, folder, zoo))
    return md, page


ZOO_FILE = "zoo-builds.json"
ZOO_HEADER = ["zoo model", "build seconds (one-time)", "details"]


def _zoo_builds(folder: Path) -> list[list[str]]:
    """Rows for the one-time zoo builds a run paid for (written by `tenfold reproduce`), if any."""
    path = folder / ZOO_FILE
    if not path.is_file():
        return []
    builds = read_json(path)
    if not isinstance(builds, dict):
        raise SchemaError(f"{path}: expected an object of zoo builds; delete it")
    rows = []
    for name, info in builds.items():
        info = info if isinstance(info, dict) else {}
        details = {k: v for k, v in info.items() if k not in ("name", "build_seconds", "config", "cached", "path")}
        rows.append([name, _fmt(info.get("build_seconds")), _fmt(details)])
    return rows


# ---------------------------------------------------------------- tables from metrics


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
            return f"{x:.3e}"
        return f"{x:.4g}"
    if isinstance(x, (list, tuple)):
        inner = ", ".join(_fmt(v) for v in x[:8])
        return f"[{inner}{', ...' if len(x) > 8 else ''}]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in list(x.items())[:6]) + (", ..." if len(x) > 6 else "") + "}"
    return str(x)


def _is_scalar(x) -> bool:
    return x is None or isinstance(x, (int, float, str, bool))


def _is_flat(d) -> bool:
    return isinstance(d, dict) and all(_is_scalar(v) or _is_short_list(v) for v in d.values())


def _is_short_list(x) -> bool:
    return isinstance(x, list) and len(x) <= 8 and all(_is_scalar(v) for v in x)


def _is_records(x) -> bool:
    return isinstance(x, list) and bool(x) and all(_is_flat(v) for v in x)


def _matrix(value: dict) -> tuple[list[str], list[list[str]]]:
    cols: list[str] = []
    for row in value.values():
        for c in row:
            if c not in cols:
                cols.append(c)
    rows = [[str(r)] + [_fmt(value[r].get(c)) for c in cols[:12]] for r in list(value)[:MAX_ROWS]]
    return [""] + cols[:12], rows


def _records(value: list) -> tuple[list[str], list[list[str]]]:
    cols: list[str] = []
    for row in value:
        for c in row:
            if c not in cols:
                cols.append(c)
    return cols[:12], [[_fmt(row.get(c)) for c in cols[:12]] for row in value[:MAX_ROWS]]


def _tables(metrics: dict, prefix: str = "") -> list[tuple[str, list[str], list[list[str]]]]:
    """Turn metrics into (caption, header, rows), recursing into nested dicts.

    A flat dict is a key/value table, a dict of flat dicts a matrix, a list of flat dicts a table of
    records; deeper nesting gives one table per branch, captioned with its path ("acc / rope").
    """
    tables: list[tuple[str, list[str], list[list[str]]]] = []
    scalars = []
    for key, value in metrics.items():
        caption = f"{prefix}{key}"
        if _is_scalar(value) or _is_short_list(value):
            scalars.append([str(key), _fmt(value)])
        elif _is_records(value):
            tables.append((caption, *_records(value)))
        elif isinstance(value, dict) and value and all(_is_flat(v) for v in value.values()):
            tables.append((caption, *_matrix(value)))
        elif isinstance(value, dict) and value:
            tables += _tables(value, prefix=f"{caption} / ")
        else:
            scalars.append([str(key), _fmt(value)])
    if scalars:
        tables.insert(0, (prefix.rstrip(" /") or "metrics", ["metric", "value"], scalars[:MAX_ROWS]))
    return tables


def _interval_text(c) -> str:
    if c.legacy:
        return "n/a (schema /1)"
    if c.exact:
        d = c.difference
        return "exact" if d is None else f"{_signed(d)} (exact)"
    if c.interval is None:
        return "not measured"
    d = c.difference
    est = f"{_signed(d)} " if d is not None else ""
    return f"{est}[{_signed(c.interval[0])}, {_signed(c.interval[1])}]"


def _signed(x: float) -> str:
    text = _fmt(float(x))
    return text if text.startswith("-") else f"+{text}"


def _claim_rows(result: Result) -> list[list[str]]:
    rows = []
    for c in result.claims:
        reference = f"{_fmt(c.reference)} ({c.reference_name})" if c.reference_name else _fmt(c.reference)
        margin = f"; margin {_fmt(c.margin)}" if c.margin else ""
        rows.append([c.id, c.statement, _fmt(c.ours), reference, _interval_text(c), f"{c.better}{margin}",
                     c.verdict, c.evidence or ("exact" if c.exact else "")])
    return rows


def claim_line(c) -> str:
    """One line for a terminal: verdict, id, the numbers and the interval."""
    name = c.reference_name or "reference"
    return f"[{c.verdict}] {c.id}: ours {_fmt(c.ours)} vs {name} {_fmt(c.reference)}, difference {_interval_text(c)}"


def _summary_row(e: Entry) -> list[str]:
    if e.result is None:
        return [e.name, e.title, e.status, "-", "-", "-", "-"]
    r = e.result
    wall = f"{r.wall_seconds:.1f}" if isinstance(r.wall_seconds, (int, float)) else "-"
    counts = r.verdict_counts()
    return [e.name, e.title, e.status, str(counts["holds"]), str(counts["inconclusive"]), str(counts["fails"]), wall]


LEGEND = ("A claim *holds* when the whole 95% interval of ours - reference lies beyond its margin on the better "
          "side, *fails* when it lies wholly on the other side, and is *inconclusive* otherwise; exact claims "
          "(deterministic computations) are point comparisons. The evidence column says how each interval was made.")
SUMMARY_HEADER = ["method", "paper", "status", "holds", "inconclusive", "fails", "wall s"]
CLAIM_HEADER = ["claim", "statement", "ours", "reference", "ours - reference [95% interval]", "better",
                "verdict", "evidence"]
VERDICT_CLASS = {"holds": "holds", "inconclusive": "inconclusive", "fails": "fails"}


def _seeds(r: Result) -> str:
    seeds = r.seeds or [r.seed]
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"


# ---------------------------------------------------------------- markdown


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in esc]
    return "\n".join(lines)


def _markdown(entries: list[Entry], folder: Path, zoo: list[list[str]]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = ["# tenfold report", "", f"Built {stamp} from the result.json files under this folder.", ""]
    out += [_md_table(SUMMARY_HEADER, [_summary_row(e) for e in entries]), "", LEGEND, ""]
    if zoo:
        out += ["Zoo models built during this run (a one-time cost, not part of the methods' wall time):", "",
                _md_table(ZOO_HEADER, zoo), ""]
    for e in entries:
        out += [f"## {e.name}: {e.title}", ""]
        if e.arxiv:
            out += [f"arXiv {e.arxiv}", ""]
        if e.result is None:
            out += [f"Status: **{e.status}**.", ""]
            continue
        r = e.result
        out += [f"Status: **{r.status}**; profile `{r.profile}`, {_seeds(r)}, "
                f"device {r.environment.get('device', '?')}.", ""]
        out += [f"> {n}" for n in r.notes] + ([""] if r.notes else [])
        if r.error:
            out += ["```", r.error.strip()[-2000:], "```", ""]
        if r.claims:
            out += ["### Claims", "", _md_table(CLAIM_HEADER, _claim_rows(r)), ""]
        for caption, header, rows in _tables(r.metrics):
            out += [f"### {caption}", "", _md_table(header, rows), ""]
        for art in r.artifacts:
            if art.lower().endswith(".png"):
                rel = (e.folder / art).relative_to(folder)
                out += [f"![{art}]({rel.as_posix()})", ""]
            else:
                out += [f"- artifact: `{(e.folder / art).relative_to(folder).as_posix()}`"]
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- html

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:.25em .6em;font-size:.9em}
th{background:#f3f3f3}.holds{color:#176b1a;font-weight:600}.fails{color:#a11;font-weight:600}
.inconclusive{color:#8a6d00;font-weight:600}
.note{background:#fff6d6;padding:.4em .8em;border-left:4px solid #e0b100}img{max-width:100%;border:1px solid #ddd}
pre{background:#f7f7f7;padding:.6em;overflow:auto}"""


def _h_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for c in row:
            cls = f' class="{VERDICT_CLASS[c]}"' if c in VERDICT_CLASS else ""
            cells.append(f"<td{cls}>{html.escape(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _html(entries: list[Entry], folder: Path, zoo: list[list[str]]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>tenfold report</title><style>{_CSS}</style></head><body>",
             "<h1>tenfold report</h1>", f"<p>Built {stamp} from the result.json files under this folder.</p>",
             _h_table(SUMMARY_HEADER, [_summary_row(e) for e in entries]),
             f"<p>{html.escape(LEGEND).replace('*', '')}</p>"]
    if zoo:
        parts += ["<p>Zoo models built during this run (a one-time cost, not part of the methods' wall time):</p>",
                  _h_table(ZOO_HEADER, zoo)]
    for e in entries:
        parts.append(f"<h2 id='{html.escape(e.name)}'>{html.escape(e.name)}: {html.escape(e.title)}</h2>")
        if e.arxiv:
            parts.append(f"<p>arXiv {html.escape(e.arxiv)}</p>")
        if e.result is None:
            parts.append(f"<p>Status: <b>{html.escape(e.status)}</b>.</p>")
            continue
        r = e.result
        parts.append(f"<p>Status: <b>{html.escape(r.status)}</b>; profile <code>{html.escape(r.profile)}</code>, {_seeds(r)}, "
                     f"device {html.escape(str(r.environment.get('device', '?')))}.</p>")
        parts += [f"<p class='note'>{html.escape(n)}</p>" for n in r.notes]
        if r.error:
            parts.append(f"<pre>{html.escape(r.error.strip()[-2000:])}</pre>")
        if r.claims:
            parts += ["<h3>Claims</h3>", _h_table(CLAIM_HEADER, _claim_rows(r))]
        for caption, header, rows in _tables(r.metrics):
            parts += [f"<h3>{html.escape(caption)}</h3>", _h_table(header, rows)]
        for art in r.artifacts:
            path = e.folder / art
            if art.lower().endswith(".png") and path.is_file():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt='{html.escape(art)}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{html.escape(art)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
