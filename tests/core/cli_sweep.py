"""The CLI robustness sweep, run as its own process by `test_cli_sweep.py`.

It walks the command tree from the app itself (so a new verb is covered without an edit here) and
tries every path-like parameter with bad paths and every numeric one with bad numbers. Each case runs
`tenfold --dry-run --quiet VERB ARGS` in a forked child of this process (which has imported every
verb and the heavy libraries once, and has run no torch kernel, so forking is safe and cheap); a case
that is still running after its time limit is killed, so one stuck case cannot poison the next.

Usage: python tests/core/cli_sweep.py REPORT.json [--workers N] [--only VERB-PREFIX] [--quick] [--timeout S]
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import tempfile
import time
import types
import typing
from dataclasses import asdict, dataclass
from pathlib import Path

CASE_SECONDS = 60.0
QUICK_CASE_SECONDS = 20.0  # the default suite's limit: a dry run reaches its stop in seconds
# the default suite's subset (the full matrix runs under `slow`): the values that broke verbs most
QUICK = {"-1", "10000000000000", "nan", "1e308", "a missing input", "a corrupted binary file", "an empty file",
         "an unwritable location", "an unexpected extra option"}
# str options that take a path (or a zoo name): tried as paths too
PATH_LIKE = {"model", "data", "text", "lists", "pipeline", "gates", "keys", "lm", "llm_model", "checkpoint", "path",
             "file", "fasta", "csv", "table", "graph", "source", "scratch", "init", "dump", "folder", "runs", "results",
             "state", "fit"}
NUMBERS = {int: ["-1", "0", "10000000000000"], float: ["-1", "0", "nan", "inf", "1e308"]}
UNWRITABLE = "/proc/tenfold-sweep/out"  # not creatable, even as root
INPUTS = "{INPUTS}"  # stands for the case's own folder of bad files (a verb may write into what it was given)


@dataclass(frozen=True)
class Case:
    verb: tuple[str, ...]
    what: str
    args: tuple[str, ...]


def _annotation(param) -> type | None:
    descriptor = getattr(param, "type_descriptor", None)
    ann = getattr(descriptor, "annotation", None)
    if ann is None:  # a plain click parameter
        kind = getattr(getattr(param, "type", None), "name", "")
        return {"integer": int, "float": float, "path": Path, "text": str}.get(kind)
    if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union:
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        ann = args[0] if args else None
    return ann


def _flag(param) -> str | None:
    opts = [o for o in param.opts if o.startswith("--")]
    return opts[0] if opts else None


def _walk(command, ctx, path=()):
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            yield from _walk(sub, sub.context_class(sub, info_name=name, parent=ctx), (*path, name))
    else:
        yield path, command


def verbs(app=None) -> list[tuple[tuple[str, ...], object]]:
    import typer

    from tenfold import cli

    root = typer.main.get_command(app or cli.app)
    return list(_walk(root, root.context_class(root, info_name="tenfold")))


def _is_output(param) -> bool:
    return "out" in param.name or param.name in ("dest", "save_to")


def _is_path(param) -> bool:
    ann = _annotation(param)
    return ann is Path or (ann is str and param.name in PATH_LIKE)


BAD_FILES = {  # what it is -> its name under a case's inputs folder
    "a missing input": "does-not-exist/input.json",
    "a folder where a file is expected": "a-folder",
    "a corrupted binary file": "garbage.bin",
    "a truncated JSON file": "truncated.json",
    "an empty file": "empty.txt",
}


def bad_files(folder: Path) -> dict[str, Path]:
    """Make the bad inputs under `folder` (the missing one stays missing)."""
    files = {what: folder / name for what, name in BAD_FILES.items()}
    files["a folder where a file is expected"].mkdir(parents=True, exist_ok=True)
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


def cases(found=None, quick: bool = False) -> list[Case]:
    """Every verb's bad cases; `quick` keeps only the QUICK kinds of bad value."""
    files = {what: Path(INPUTS) / name for what, name in BAD_FILES.items()}
    out_ok = str(Path(INPUTS) / "out-ok")
    made: list[Case] = []
    for verb, command in found or verbs():
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
                tries = {"an unwritable location": UNWRITABLE, "an existing file": str(files["a corrupted binary file"])}
            elif _is_path(p):
                tries = {what: str(f) for what, f in files.items()}
            elif ann in NUMBERS:
                tries = {value: value for value in NUMBERS[ann]}
            else:
                continue
            for what, value in tries.items():
                if quick and what not in QUICK:
                    continue
                made.append(Case(verb, f"{p.name}: {what}", _render(params, {**baseline, p.name: value})))
        if len(made) == before:  # a verb without path or number parameters still gets a bad call
            made.append(Case(verb, "an unexpected extra option", (*_render(params, baseline), "--no-such-option-here")))
    return made


def _child(case: Case, write_fd: int, cwd: Path) -> None:
    """In the forked child: run the case on its own fresh bad files, with stdout/stderr on files,
    and report through the pipe."""
    from tenfold import cli

    own = Path(tempfile.mkdtemp(prefix="case-", dir=cwd))
    bad_files(own / "inputs")
    args = [a.replace(INPUTS, str(own / "inputs")) for a in case.args]
    os.chdir(own)
    err_file = tempfile.TemporaryFile(mode="w+")
    out_file = tempfile.TemporaryFile(mode="w+")
    os.dup2(out_file.fileno(), 1)
    os.dup2(err_file.fileno(), 2)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - Python-level streams on the new fds too
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
    code = 0
    try:
        cli.main(["--dry-run", "--quiet", *case.verb, *args])
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException as crash:  # noqa: BLE001 - a crash is exactly what the sweep looks for
        import traceback

        code = 1
        traceback.print_exception(crash)
    sys.stderr.flush()
    err_file.seek(0)
    payload = json.dumps({"code": code, "stderr": err_file.read()[-4000:]}).encode()
    with os.fdopen(write_fd, "wb") as pipe:
        pipe.write(payload)
    os._exit(0)


def _start(case: Case, cwd: Path):
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            _child(case, write_fd, cwd)
        finally:
            os._exit(3)
    os.close(write_fd)
    return pid, read_fd, time.monotonic()


def _finish(pid: int, read_fd: int, started: float, timed_out: bool) -> dict:
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    chunks = []
    while not timed_out:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    seconds = round(time.monotonic() - started, 2)
    if timed_out:
        return {"code": -1, "stderr": "", "seconds": seconds}
    try:
        return {**json.loads(b"".join(chunks)), "seconds": seconds}
    except json.JSONDecodeError:
        return {"code": -2, "stderr": "the case's process died without a report", "seconds": seconds}


def run_cases(all_cases: list[Case], cwd: Path, workers: int = 2, timeout: float = CASE_SECONDS,
              log=None) -> list[dict]:
    """Run every case in a forked child, `workers` at a time; a child over `timeout` is killed."""
    results: list[dict | None] = [None] * len(all_cases)
    running: dict[int, tuple[int, int, float]] = {}  # read_fd -> (index, pid, started)
    queue = list(range(len(all_cases)))
    while queue or running:
        while queue and len(running) < workers:
            i = queue.pop(0)
            pid, fd, started = _start(all_cases[i], cwd)
            running[fd] = (i, pid, started)
        ready, _, _ = select.select(list(running), [], [], 0.5)
        now = time.monotonic()
        for fd in list(running):
            i, pid, started = running[fd]
            if fd in ready or now - started > timeout:
                del running[fd]
                results[i] = {**asdict(all_cases[i]), **_finish(pid, fd, started, fd not in ready)}
                if log:
                    r = results[i]
                    last = r["stderr"].strip().splitlines()[-1][:160] if r["stderr"].strip() else ""
                    print(f"{r['seconds']:6.2f}s exit {r['code']} {' '.join(r['verb'])} [{r['what']}] {last}",
                          file=log, flush=True)
    return results  # type: ignore[return-value]


def judge(result: dict) -> str | None:
    """None when the case behaved; else what went wrong."""
    code, stderr = result["code"], result["stderr"]
    lines = [line for line in stderr.splitlines() if line.strip()]
    if code == -1:
        return f"still running after {result['seconds']:.0f} s (validate the input first, or mark the work with progress)"
    if "Traceback" in stderr:
        return f"traceback: {lines[-1][:200] if lines else ''}"
    if code == 2:
        errors = [line for line in lines if line.startswith("error:")]
        return None if len(errors) == 1 else f"exit 2 with {len(errors)} error lines: {lines[:3]}"
    if code == 0:
        return None
    return f"exit {code}: {lines[-1][:200] if lines else 'no message'}"


def _preload() -> None:
    """Import what the verbs import lazily, once, so forked children do not each pay for it."""
    import importlib

    for name in ("torch", "numpy", "scipy.stats", "scipy.optimize", "sklearn", "pandas", "matplotlib.pyplot",
                 "transformers", "diffusers", "torch_geometric", "safetensors.torch", "accelerate", "peft"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="")
    parser.add_argument("--log", default="")
    parser.add_argument("--quick", action="store_true", help="the default suite's subset of bad values")
    parser.add_argument("--timeout", type=float, default=CASE_SECONDS)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _preload()
    found = verbs()
    with tempfile.TemporaryDirectory(prefix="tenfold-sweep-") as tmp:
        work = Path(tmp)
        all_cases = [c for c in cases(found, quick=args.quick) if " ".join(c.verb).startswith(args.only)]
        (work / "cwd").mkdir()
        log = open(args.log, "w") if args.log else None  # noqa: SIM115
        start = time.monotonic()
        results = run_cases(all_cases, work / "cwd", workers=args.workers, timeout=args.timeout, log=log)
        report = {
            "verbs": [" ".join(v) for v, _ in found],
            "covered": sorted({" ".join(c.verb) for c in all_cases}),
            "cases": len(results),
            "seconds": round(time.monotonic() - start, 1),
            "problems": [{**r, "why": why} for r in results if (why := judge(r))],
            "exit_2": sum(r["code"] == 2 for r in results),
            "accepted": sum(r["code"] == 0 for r in results),
        }
    Path(args.report).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
