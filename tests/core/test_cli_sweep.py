"""Every verb of the command line, found by walking the app itself (so a new verb is covered without
an edit here), tried with bad paths and bad numbers: each case must end with exit 2 and one line on
stderr, or be accepted (exit 0: under --dry-run a valid case stops where long work would start).
Never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from tenfold import cli

CASE_SECONDS = 60
# str options that take a path (or a zoo name): tried as paths too
PATH_LIKE = {"model", "data", "text", "lists", "pipeline", "gates", "keys", "lm", "llm_model", "checkpoint", "path",
             "file", "fasta", "csv", "table", "graph", "source", "scratch", "init", "dump", "folder", "runs", "results"}
# strings that are not paths but where nonsense must be a clean error
NUMBERS = {int: ["-1", "0", "10000000000000"], float: ["-1", "0", "nan", "inf", "1e308"]}


def _annotation(param) -> type | None:
    descriptor = getattr(param, "type_descriptor", None)
    ann = getattr(descriptor, "annotation", None)
    if ann is None:  # plain click parameter
        kind = getattr(getattr(param, "type", None), "name", "")
        return {"integer": int, "float": float, "path": Path, "text": str}.get(kind)
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union:
        ann = args[0] if args else None
    return ann


def _flag(param) -> str | None:
    opts = [o for o in param.opts if o.startswith("--")]
    return opts[0] if opts else None


def _walk(command, ctx, path=()):
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
            yield from _walk(sub, sub_ctx, (*path, name))
    else:
        yield path, command


def verbs() -> list[tuple[tuple[str, ...], object]]:
    root = typer.main.get_command(cli.app)
    return list(_walk(root, root.context_class(root, info_name="tenfold")))


@dataclass(frozen=True)
class Case:
    verb: tuple[str, ...]
    what: str
    args: tuple[str, ...]


def _is_output(param) -> bool:
    return "out" in param.name or param.name in ("dest", "save_to")


def _is_path(param) -> bool:
    ann = _annotation(param)
    return ann is Path or (ann is str and param.name in PATH_LIKE)


def _files(tmp: Path) -> dict[str, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    files = {
        "a missing input": tmp / "does-not-exist" / "input.json",
        "a folder where a file is expected": tmp / "a-folder",
        "a corrupted binary file": tmp / "garbage.bin",
        "a truncated JSON file": tmp / "truncated.json",
        "an empty file": tmp / "empty.txt",
    }
    files["a folder where a file is expected"].mkdir(exist_ok=True)
    files["a corrupted binary file"].write_bytes(b"\x00\xff\xfe\x93NUMPY garbage \x00" * 64)
    files["a truncated JSON file"].write_text('{"schema": "tenfold.result/2", "claims": [')
    files["an empty file"].write_text("")
    return files


def _render(params, values: dict) -> tuple[str, ...]:
    """Options as `--flag value`, positional arguments in their declared order."""
    args: list[str] = []
    for p in params:
        if p.name in values:
            args += [_flag(p), values[p.name]] if _flag(p) else [values[p.name]]
    return tuple(args)


def cases(tmp: Path) -> list[Case]:
    files = _files(tmp)
    out_ok = str(tmp / "out-ok")
    unwritable = "/proc/tenfold-sweep/out"  # not creatable, even as root
    made: list[Case] = []
    for verb, command in verbs():
        params = [p for p in command.params if getattr(p, "expose_value", True) and p.name != "help"]
        baseline = {  # required parameters get a value of the right form
            p.name: out_ok if _is_output(p) else str(files["a missing input"]) if _is_path(p) else
            "1" if _annotation(p) in (int, float) else "x"
            for p in params if p.required
        }
        before = len(made)
        for p in params:
            if getattr(p, "is_flag", False) or getattr(p, "count", False):
                continue
            ann = _annotation(p)
            if _is_path(p) and _is_output(p):
                tries = {"an unwritable location": unwritable, "an existing file": str(files["a corrupted binary file"])}
            elif _is_path(p):
                tries = {what: str(f) for what, f in files.items()}
            elif ann in NUMBERS:
                tries = {value: value for value in NUMBERS[ann]}
            else:
                continue
            for what, value in tries.items():
                made.append(Case(verb, f"{p.name}: {what}", _render(params, {**baseline, p.name: value})))
        if len(made) == before:  # a verb without path or number parameters still gets a bad call
            made.append(Case(verb, "an unexpected extra option", (*_render(params, baseline), "--no-such-option-here")))
    return made


class _TooLong(Exception):
    pass


def _run(case: Case) -> tuple[int, str]:
    err = io.StringIO()

    def alarm(*_):
        raise _TooLong

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    code = 0
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            cli.main(["--dry-run", "--quiet", *case.verb, *case.args])
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except _TooLong:
        code = -1
    except BaseException as crash:  # noqa: BLE001 - a crash is exactly what the sweep looks for
        import traceback

        code = 1
        err.write("Traceback (uncaught):\n" + "".join(traceback.format_exception(crash)))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, err.getvalue()


def test_every_verb_fails_cleanly_on_bad_paths_and_numbers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    all_cases = cases(tmp_path / "inputs")
    found = verbs()
    assert len(found) >= 40  # every method's verbs, plus the core commands
    covered = {c.verb for c in all_cases}
    assert covered == {v for v, _ in found}, "a verb got no case"
    problems = []
    outcomes = {"exit 2": 0, "accepted": 0}
    log = Path(os.environ["TENFOLD_SWEEP_LOG"]).open("w") if os.environ.get("TENFOLD_SWEEP_LOG") else None
    for case in all_cases:
        start = time.perf_counter()
        code, stderr = _run(case)
        if log:  # a live record of a long sweep: TENFOLD_SWEEP_LOG=path
            print(f"{time.perf_counter() - start:6.2f}s exit {code} {' '.join(case.verb)} [{case.what}] "
                  f"{stderr.strip().splitlines()[-1][:150] if stderr.strip() else ''}", file=log, flush=True)
        lines = [line for line in stderr.splitlines() if line.strip()]
        name = f"tenfold {' '.join(case.verb)} [{case.what}]"
        if code == -1:
            problems.append(f"{name}: still running after {CASE_SECONDS} s (validate first, or mark work with progress)")
        elif "Traceback" in stderr:
            problems.append(f"{name}: traceback: {stderr.strip().splitlines()[-1][:200]}")
        elif code == 2:
            outcomes["exit 2"] += 1
            errors = [line for line in lines if line.startswith("error:")]
            if len(errors) != 1:
                problems.append(f"{name}: exit 2 but {len(errors)} error lines: {lines[:3]}")
        elif code == 0:
            outcomes["accepted"] += 1
        else:
            problems.append(f"{name}: exit {code}: {lines[-1][:200] if lines else 'no message'}")
    print(json.dumps({"verbs": len(found), "cases": len(all_cases), **outcomes, "problems": len(problems)}))
    assert not problems, f"{len(problems)} of {len(all_cases)} cases misbehave:\n" + "\n".join(problems)


def test_the_sweep_itself_catches_a_traceback_and_a_multi_line_error(monkeypatch):
    """Negative control: a verb that crashes, or prints two error lines, is reported."""
    demo = typer.Typer()

    @demo.command()
    def crash(n: int = typer.Option(1)) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli.app, "registered_groups", [*cli.app.registered_groups])
    cli.app.add_typer(demo, name="sweep-demo")
    code, stderr = _run(Case(("sweep-demo", "crash"), "n=1", ("--n", "1")))
    assert "Traceback" in stderr and code == 1
    code, stderr = _run(Case(("sweep-demo", "crash"), "n=x", ("--n", "x")))
    assert code == 2 and stderr.count("error:") == 1


@pytest.fixture(autouse=True)
def _reset_cli_state():
    from tenfold.core import runtime

    saved = dict(runtime._settings)
    yield
    runtime._settings.update(saved)
