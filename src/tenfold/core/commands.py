"""The `reproduce` and `bench` verbs every method's typer app gets, written once."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from tenfold.core.registry import registered
from tenfold.core.runner import MAX_SEED


def seed_option(help: str = "Seed."):
    """The --seed option every verb shares: 0 by default, 0..MAX_SEED, checked by the parser (one line, exit 2)."""
    return typer.Option(0, min=0, max=MAX_SEED, help=help)


def _spec(name: str):
    importlib.import_module(f"tenfold.{name}.experiment")  # registers the method
    return registered()[name]


def run_standard(name: str, kind: str, profile: str, out: Path, seed: int, seeds: int | None = None,
                 **options) -> None:
    """Run method `name`'s reproduce/bench through the core runner (result file, environment record,
    report) and print its verdicts. `options` go to the method's runner as keyword arguments, for a
    method whose own `reproduce` verb takes more options (e.g. liber's --llm)."""
    import dataclasses
    import functools

    from tenfold.core.report import build_report, claim_line
    from tenfold.core.runner import run_method

    spec = _spec(name)
    if options:
        field = "reproduce" if kind == "reproduce" else "bench"
        spec = dataclasses.replace(spec, **{field: functools.partial(getattr(spec, field), **options)})
    result = run_method(spec, kind, profile, seed, out, fail_fast=True, seeds=seeds)
    md, page = build_report(out)
    typer.echo(f"result: {(Path(out) / name / 'result.json').resolve()}")
    typer.echo(f"report: {page.resolve()}")
    for c in result.claims:
        typer.echo(f"  {claim_line(c)}")


def add_standard_commands(app: typer.Typer, name: str, reproduce: bool = True, bench: bool = True) -> None:
    """Add `reproduce` and `bench` to a method's sub-app; both write OUT/<name>/result.json.

    A method whose reproduce takes more options passes reproduce=False and defines its own verb
    that calls `run_standard(name, "reproduce", ..., **its_options)`.
    """

    def run(kind: str, profile: str, out: Path, seed: int, seeds: int | None = None) -> None:
        run_standard(name, kind, profile, out, seed, seeds)

    if reproduce:
        _add_reproduce(app, name, run)
    if bench:
        _add_bench(app, name, run)


def _add_reproduce(app: typer.Typer, name: str, run) -> None:
    @app.command("reproduce")
    def reproduce(
        profile: str = typer.Option("quick", help="smoke (seconds), quick (2 CPU cores) or full (GPU / long night)."),
        out: Path = typer.Option(Path("reports"), help=f"Output folder; the result goes to OUT/{name}/result.json."),
        seed: int = seed_option("Seed for every random choice (the first seed when several)."),
        seeds: int = typer.Option(None, help="How many seeds (seed, seed+1, ...); default: the profile's."),
    ) -> None:
        """Reproduce the paper's claims on this machine and write result.json + plots."""
        run("reproduce", profile, out, seed, seeds)


def _add_bench(app: typer.Typer, name: str, run) -> None:
    @app.command("bench")
    def bench(
        profile: str = typer.Option("quick", help="smoke, quick or full."),
        out: Path = typer.Option(Path("reports/bench"), help=f"Output folder; OUT/{name}/result.json."),
        seed: int = seed_option(),
    ) -> None:
        """Benchmark against the baselines side by side (ratios, JSON out)."""
        run("bench", profile, out, seed)
