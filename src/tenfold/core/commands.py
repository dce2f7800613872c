"""The `reproduce` and `bench` verbs every method's typer app gets, written once."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from tenfold.core.registry import registered


def _spec(name: str):
    importlib.import_module(f"tenfold.{name}.experiment")  # registers the method
    return registered()[name]


def add_standard_commands(app: typer.Typer, name: str) -> None:
    """Add `reproduce` and `bench` to a method's sub-app; both write OUT/<name>/result.json."""

    def run(kind: str, profile: str, out: Path, seed: int) -> None:
        from tenfold.core.report import build_report
        from tenfold.core.runner import run_method

        result = run_method(_spec(name), kind, profile, seed, out, fail_fast=True)
        md, page = build_report(out)
        typer.echo(f"result: {(Path(out) / name / 'result.json').resolve()}")
        typer.echo(f"report: {page.resolve()}")
        for c in result.claims:
            typer.echo(f"  [{'holds' if c.holds else 'does not hold'}] {c.id}: ours={c.ours} vs {c.reference_name or 'reference'}={c.reference}")

    @app.command("reproduce")
    def reproduce(
        profile: str = typer.Option("quick", help="quick (2 CPU cores) or full (GPU / long night)."),
        out: Path = typer.Option(Path("reports"), help=f"Output folder; the result goes to OUT/{name}/result.json."),
        seed: int = typer.Option(0, help="Seed for every random choice."),
    ) -> None:
        """Reproduce the paper's claims on this machine and write result.json + plots."""
        run("reproduce", profile, out, seed)

    @app.command("bench")
    def bench(
        profile: str = typer.Option("quick", help="quick or full."),
        out: Path = typer.Option(Path("reports/bench"), help=f"Output folder; OUT/{name}/result.json."),
        seed: int = typer.Option(0, help="Seed."),
    ) -> None:
        """Benchmark against the baselines side by side (ratios, JSON out)."""
        run("bench", profile, out, seed)
