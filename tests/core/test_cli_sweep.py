"""Every verb of the command line, found by walking the app itself (so a new verb is covered without
an edit here), tried with bad paths and bad numbers: each case must end with exit 2 and one line on
stderr, or be accepted (exit 0: under --dry-run a valid case stops where long work would start).
Never a traceback. The sweep runs in its own process (tests/core/cli_sweep.py), one fork per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import cli_sweep  # noqa: E402


def _sweep(tmp_path, *options: str) -> None:
    report_file = tmp_path / "sweep.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = ["--log", os.environ["TENFOLD_SWEEP_LOG"]] if os.environ.get("TENFOLD_SWEEP_LOG") else []
    subprocess.run([sys.executable, str(HERE / "cli_sweep.py"), str(report_file), *options, *log], check=True,
                   env=env, timeout=3600)
    report = json.loads(report_file.read_text())
    print(json.dumps({k: v for k, v in report.items() if k not in ("problems", "verbs", "covered")}))
    assert len(report["verbs"]) >= 40  # every method's verbs, plus the core commands
    assert report["covered"] == sorted(report["verbs"]), "a verb got no case"
    problems = [f"tenfold {' '.join(p['verb'])} [{p['what']}]: {p['why']}" for p in report["problems"]]
    assert not problems, f"{len(problems)} of {report['cases']} cases misbehave:\n" + "\n".join(problems)


def test_every_verb_fails_cleanly_on_the_likeliest_bad_paths_and_numbers(tmp_path):
    """The default suite's sweep: every verb and parameter, the bad values that broke verbs most
    (-1, a huge count, nan, 1e308, a missing / corrupted / empty file, an unwritable output), each
    case stopping within 20 s."""
    _sweep(tmp_path, "--quick", "--timeout", str(cli_sweep.QUICK_CASE_SECONDS))


@pytest.mark.slow
def test_every_verb_fails_cleanly_on_every_bad_path_and_number(tmp_path):
    """The full matrix (adds 0, inf, -1 for floats, a folder, truncated JSON, an existing output)."""
    _sweep(tmp_path)


def test_the_sweep_catches_a_traceback_a_hang_and_a_multi_line_error(tmp_path):
    """Negative control: the harness reports a crashing, a hanging and a chatty verb."""
    from tenfold import cli

    demo = typer.Typer()

    @demo.command()
    def crash(n: int = typer.Option(1)) -> None:
        raise RuntimeError("boom")

    @demo.command()
    def hang(n: int = typer.Option(1)) -> None:
        import time

        time.sleep(30)

    @demo.command()
    def chatty(n: int = typer.Option(1)) -> None:
        typer.echo("error: one", err=True)
        typer.echo("error: two", err=True)
        raise SystemExit(2)

    cli.app.add_typer(demo, name="sweep-demo")
    try:
        runs = cli_sweep.run_cases(
            [cli_sweep.Case(("sweep-demo", "crash"), "n=1", ("--n", "1")),
             cli_sweep.Case(("sweep-demo", "crash"), "n=x", ("--n", "x")),
             cli_sweep.Case(("sweep-demo", "hang"), "n=1", ("--n", "1")),
             cli_sweep.Case(("sweep-demo", "chatty"), "n=1", ("--n", "1"))],
            tmp_path, workers=2, timeout=3)
    finally:
        cli.app.registered_groups.pop()
    verdicts = [cli_sweep.judge(r) for r in runs]
    assert verdicts[0] and "traceback" in verdicts[0]
    assert verdicts[1] is None and runs[1]["code"] == 2  # a bad value is a clean one-line error
    assert verdicts[2] and "still running" in verdicts[2]
    assert verdicts[3] and "2 error lines" in verdicts[3]


def test_cases_cover_each_parameter_kind():
    found = cli_sweep.verbs()
    made = cli_sweep.cases(found)
    kinds = {c.what.split(": ", 1)[-1] for c in made}
    assert {"a missing input", "a folder where a file is expected", "a corrupted binary file", "a truncated JSON file",
            "an unwritable location", "-1", "0", "nan", "1e308"} <= kinds


def test_the_quick_subset_still_covers_every_verb():
    found = cli_sweep.verbs()
    full, quick = cli_sweep.cases(found), cli_sweep.cases(found, quick=True)
    assert set(quick) <= set(full) and len(quick) < len(full)
    assert {c.verb for c in quick} == {v for v, _ in found}
