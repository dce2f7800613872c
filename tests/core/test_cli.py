"""The `tenfold` command: help, version, error paths (one line, exit 2) and the reproduce runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenfold import cli, methods
from tenfold.core.registry import MethodSpec
from tenfold.core.results import Result, load_result


def tenfold(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tenfold", *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_core_commands_and_all_ten_methods():
    proc = tenfold("--help")
    assert proc.returncode == 0
    for name in ("reproduce", "report", "data", "zoo", *methods.NAMES):
        assert name in proc.stdout


def test_version():
    proc = tenfold("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("tenfold ")


@pytest.mark.parametrize("args,needle", [
    (("nosuch",), "unknown command 'nosuch'"),
    (("reproduce", "--only", "prune,nosuch"), "unknown method 'nosuch'"),
    (("reproduce", "--profile", "huge"), "--profile must be one of"),
    (("data", "show", "nosuch"), "unknown dataset 'nosuch'"),
    (("zoo", "build", "nosuch"), "unknown zoo model 'nosuch'"),
    (("report", "does-not-exist"), "is not a folder of results"),
])
def test_bad_input_gives_one_clear_line_and_exit_2(args, needle):
    proc = tenfold(*args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback():
    proc = tenfold("--debug", "data", "show", "nosuch")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_report_on_a_corrupted_result_names_the_file(tmp_path):
    bad = tmp_path / "x" / "result.json"
    bad.parent.mkdir()
    bad.write_text("[1, 2")
    proc = tenfold("report", str(tmp_path))
    assert proc.returncode == 2 and str(bad) in proc.stderr


def test_out_path_that_is_a_file_is_refused_and_left_alone(tmp_path, monkeypatch):
    blocker = tmp_path / "out"
    blocker.write_text("keep me")
    monkeypatch.setattr(methods, "load", lambda name: _fake_spec(name))
    runner = CliRunner()
    res = runner.invoke(cli.app, ["reproduce", "--only", "prune", "--out", str(blocker)])
    assert res.exit_code != 0 and "is a file" in str(res.exception)
    assert blocker.read_text() == "keep me"


def _fake_spec(name, fail=False, no_interval=False):
    def reproduce(profile, seed, out, seeds=None):
        if fail:
            raise RuntimeError("boom")
        seeds = list(range(seed, seed + (seeds or 1)))
        r = Result(method=name, kind="reproduce", paper={"title": name, "arxiv": ""}, profile=profile, seed=seed,
                   seeds=seeds, metrics={"x": seed})
        if no_interval:
            r.claim("c", "x small", 1.0, 2.0, "ref", "lower")
        else:
            r.claim("c", "x small", 1.0, 2.0, "ref", "lower", interval=(-1.5, -0.5), evidence="bootstrap")
        return r

    return MethodSpec(name=name, title=name, arxiv="", reproduce=reproduce)


def test_a_method_claim_without_interval_is_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch):
    import subprocess
    import sys

    code = (
        "import sys; from tenfold.core.registry import MethodSpec, register; import tests.core.test_cli as t;"
        "import tenfold.core.commands as c; c._spec = lambda name: t._fake_spec(name, no_interval=True);"
        "from tenfold.prune.cli import app; import tenfold.cli as cli; sys.argv = ['tenfold'] + sys.argv[1:]; cli.main()"
    )
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-c", code, "prune", "reproduce", "--out", str(out)], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and "claim 'c'" in res.stderr and "no interval" in res.stderr
    assert not (out / "prune" / "result.json").exists()


def test_seeds_reach_the_method_and_are_recorded(tmp_path, monkeypatch):
    specs = {"prune": _fake_spec("prune")}
    monkeypatch.setattr(methods, "load", lambda name: specs[name])
    monkeypatch.setattr(methods, "is_implemented", lambda name: name in specs)
    res = CliRunner().invoke(cli.app, ["reproduce", "--only", "prune", "--out", str(tmp_path), "--seed", "4",
                                       "--seeds", "3"])
    assert res.exit_code == 0, res.output
    assert load_result(tmp_path / "prune" / "result.json").seeds == [4, 5, 6]
    bad = CliRunner().invoke(cli.app, ["reproduce", "--only", "prune", "--out", str(tmp_path), "--seeds", "0"])
    assert bad.exit_code != 0 and "--seeds must be between 1 and 100" in str(bad.exception)


def test_reproduce_runs_registered_methods_lists_missing_ones_and_reports_failures(tmp_path, monkeypatch):
    specs = {"prune": _fake_spec("prune"), "hsr": _fake_spec("hsr", fail=True), "rope": None}
    monkeypatch.setattr(methods, "load", lambda name: specs[name])
    monkeypatch.setattr(methods, "is_implemented", lambda name: specs.get(name) is not None)
    res = CliRunner().invoke(cli.app, ["reproduce", "--only", "prune,hsr,rope", "--out", str(tmp_path), "--seed", "3"])
    assert res.exit_code == 1  # a method failed: not a clean run
    ok = load_result(tmp_path / "prune" / "result.json")
    assert ok.status == "ok" and ok.metrics == {"x": 3} and ok.environment["device"] == "cpu"
    failed = load_result(tmp_path / "hsr" / "result.json")
    assert failed.status == "failed" and "boom" in failed.error
    index = (tmp_path / "index.md").read_text()
    assert "| rope |" in index and "not implemented yet" in index and "failed" in index


def test_reproduce_exits_0_when_every_implemented_method_ran(tmp_path, monkeypatch):
    specs = {"prune": _fake_spec("prune"), "rope": None}
    monkeypatch.setattr(methods, "load", lambda name: specs[name])
    monkeypatch.setattr(methods, "is_implemented", lambda name: specs.get(name) is not None)
    res = CliRunner().invoke(cli.app, ["reproduce", "--only", "prune,rope", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "index.html").is_file()


def test_one_time_zoo_builds_are_reported_apart_from_method_time(tmp_path, monkeypatch):
    import json
    import time

    from tenfold.zoo.registry import ZooSpec, register_model

    def builder(folder, seed=0):
        time.sleep(0.3)
        (folder / "w").write_text("w")
        return {"parameters": 1}

    zoo = register_model(ZooSpec("test-cli-zoo", "1", "none", "test", builder))

    def reproduce(profile, seed, out):
        zoo.ensure()
        return Result(method="prune", kind="reproduce", paper={"title": "p", "arxiv": ""})

    specs = {"prune": MethodSpec("prune", "p", "", reproduce)}
    monkeypatch.setattr(methods, "load", lambda name: specs[name])
    monkeypatch.setattr(methods, "is_implemented", lambda name: name in specs)
    res = CliRunner().invoke(cli.app, ["reproduce", "--only", "prune", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    result = load_result(tmp_path / "prune" / "result.json")
    assert result.wall_seconds < 0.3 and "test-cli-zoo" in result.notes[0]
    builds = json.loads((tmp_path / "zoo-builds.json").read_text())
    assert builds["test-cli-zoo"]["build_seconds"] >= 0.3
    assert "one-time cost" in (tmp_path / "index.md").read_text()


def _run_demo(capsys, body):
    """Run a throwaway verb through cli.main and return (exit code, stderr lines)."""
    import typer

    demo = typer.Typer()
    demo.command("go")(body)
    cli.app.add_typer(demo, name="boundary-demo")
    try:
        with pytest.raises(SystemExit) as stop:
            cli.main(["boundary-demo", "go"])
    finally:
        cli.app.registered_groups.pop()
    return stop.value.code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_an_empty_file_hit_by_a_loader_is_one_line_not_an_abort(capsys):
    def go() -> None:
        raise EOFError("Ran out of input")  # what np.load / pickle raise on an empty file

    code, lines = _run_demo(capsys, go)
    assert code == 2 and len(lines) == 1 and "ended early" in lines[0]


def test_torch_refusing_an_allocation_is_one_line_but_other_runtime_errors_are_not_hidden(capsys):
    import torch

    def huge() -> None:
        torch.empty(10**13, 10**13)

    code, lines = _run_demo(capsys, huge)
    assert code == 2 and len(lines) == 1 and "not enough memory" in lines[0]

    def bug() -> None:
        raise RuntimeError("a real bug")

    with pytest.raises(RuntimeError, match="a real bug"):
        _run_demo(capsys, bug)


def test_seed_outside_what_seeded_libraries_take_is_refused_by_the_parser():
    for bad in ("-1", str(2**31)):
        proc = tenfold("--dry-run", "looped", "reproduce", "--seed", bad)
        assert proc.returncode == 2 and "--seed" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
