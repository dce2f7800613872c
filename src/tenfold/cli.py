"""The `tenfold` command: core commands plus one sub-command group per method, loaded lazily."""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
import time
from pathlib import Path

import click
import typer
from typer.core import TyperGroup

import tenfold
from tenfold import methods
from tenfold.core.errors import DryRunStop, TenfoldError, UnknownNameError

_state = {"debug": False}
try:  # typer >= 0.20 vendors click; older typer raises click's own exceptions
    from typer._click.exceptions import UsageError as _TyperUsageError
except ImportError:  # pragma: no cover
    _TyperUsageError = click.UsageError
USAGE_ERRORS = (click.UsageError, _TyperUsageError)
ABORTS = (click.Abort, typer.Abort)


class MethodGroup(TyperGroup):
    """Core commands first, then the ten methods, each imported only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(super().list_commands(ctx)) + list(methods.NAMES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in methods.NAMES:
            return _method_command(name)
        return super().get_command(ctx, name)

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name and not name.startswith("-") and name not in self.list_commands(ctx):
            raise UnknownNameError(
                f"unknown command {name!r}: choose one of {', '.join(self.list_commands(ctx))} (see tenfold --help)")
        return super().resolve_command(ctx, args)


def _method_command(name: str) -> click.Command:
    paper = methods.paper(name)
    if importlib.util.find_spec(f"tenfold.{name}") is not None and importlib.util.find_spec(f"tenfold.{name}.cli") is not None:
        module = importlib.import_module(f"tenfold.{name}.cli")
        command = typer.main.get_command(module.app)
        command.name = name
        return command

    @click.command(name=name, help=f"{paper.title} (not implemented yet).",
                   context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def missing() -> None:
        raise TenfoldError(f"method {name!r} is not implemented yet: see the open issue for {name}")

    return missing


app = typer.Typer(
    cls=MethodGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="tenfold: ten recent ML papers as tested, benchmarked software.\n\n"
         "Start with `tenfold reproduce --profile quick --out reports`, or `tenfold <method> --help`.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tenfold {tenfold.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or status lines."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice)."),
    mixed_precision: str = typer.Option("no", "--mixed-precision",
                                        help="Training precision through accelerate: no, bf16 or fp16 (GPU)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check every argument and input, then stop before "
                                 "long work starts (training, a method run, a zoo build, a long loop); exit 0."),
) -> None:
    from tenfold.core.progress import set_quiet
    from tenfold.core.runtime import configure

    _state["debug"] = debug
    set_quiet(quiet)
    configure(device=device, threads=threads, mixed_precision=mixed_precision, dry_run=dry_run)


def _expected():
    from tenfold.core.report import Expected

    return [Expected(p.name, p.title, p.arxiv, methods.is_implemented(p.name)) for p in methods.PAPERS]


def _run_all(kind: str, profile: str, only: str | None, out: Path, seed: int, seeds: int | None = None) -> None:
    from tenfold.core.io import atomic_write_json, ensure_writable_dir
    from tenfold.core.report import ZOO_FILE, build_report
    from tenfold.core.runner import check_profile, check_seeds, run_method
    from tenfold.zoo.registry import all_models

    check_profile(profile)
    check_seeds(seeds, seed)
    names = methods.parse_only(only)
    ensure_writable_dir(out)
    built: dict[str, dict] = {}
    failed, missing = [], []
    for name in names:
        spec = methods.load(name)
        if spec is None:
            missing.append(name)
            continue
        before = {m.name for m in all_models() if m.is_built()}
        result = run_method(spec, kind, profile, seed, out, seeds=seeds)
        new = {m.name: m.info() for m in all_models() if m.is_built() and m.name not in before}
        if new:  # one-time zoo builds are reported apart, not charged to the method
            zoo_seconds = sum(float(info.get("build_seconds") or 0) for info in new.values())
            result.wall_seconds = round(max(0.0, result.wall_seconds - zoo_seconds), 3)
            spent = ", ".join(f"{k} {v.get('build_seconds')} s" for k, v in new.items())
            result.notes.append(f"wall_seconds excludes one-time zoo builds: {spent}")
            result.write(Path(out) / name)
            built.update(new)
        if result.status != "ok":
            failed.append(name)
    if built:
        atomic_write_json(Path(out) / ZOO_FILE, built)
    md, page = build_report(out, [e for e in _expected() if e.name in names])
    typer.echo(f"report: {page.resolve()}\n        {md.resolve()}")
    if missing:
        typer.echo(f"not implemented yet: {', '.join(missing)}")
    if failed:
        typer.echo(f"failed: {', '.join(failed)} (details in the report)", err=True)
        raise typer.Exit(1)


@app.command()
def reproduce(
    profile: str = typer.Option("quick", help="quick (2 CPU cores, < 30 min for all) or full (GPU / long night)."),
    only: str = typer.Option(None, help="Comma-separated methods, e.g. prune,hsr (default: all ten)."),
    out: Path = typer.Option(Path("reports"), help="Output folder: one sub-folder per method plus index.md/html."),
    seed: int = typer.Option(0, help="Seed for every random choice (the first seed when several)."),
    seeds: int = typer.Option(None, help="How many seeds each method runs (seed, seed+1, ...); default: each "
                                         "method's profile (see docs/architecture.md)."),
) -> None:
    """Run every method's reproduce and build the report (the main job)."""
    _run_all("reproduce", profile, only, out, seed, seeds)


@app.command()
def bench(
    profile: str = typer.Option("quick", help="quick or full."),
    only: str = typer.Option(None, help="Comma-separated methods (default: all implemented)."),
    out: Path = typer.Option(Path("reports/bench"), help="Output folder."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Run every method's benchmark (side-by-side ratios against baselines, JSON out)."""
    _run_all("bench", profile, only, out, seed)


@app.command()
def report(folder: Path = typer.Argument(..., help="Folder holding */result.json files.")) -> None:
    """Rebuild FOLDER/index.md and index.html from every */result.json under FOLDER."""
    from tenfold.core.report import build_report

    md, page = build_report(folder, _expected())
    typer.echo(f"report: {page.resolve()}\n        {md.resolve()}")


data_app = typer.Typer(help="Datasets: real-format loaders and documented generators.", no_args_is_help=True)
zoo_app = typer.Typer(help="Small models trained here and cached under $TENFOLD_HOME/zoo.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(zoo_app, name="zoo")


@data_app.command("list")
def data_list() -> None:
    """Every dataset: name, source, size, licence and loader."""
    from tenfold.data.registry import all_datasets

    rows = [(d.name, d.source, d.size, d.licence, d.loader) for d in all_datasets()]
    _print_table(("name", "source", "size", "licence", "loader"), rows)


@data_app.command("show")
def data_show(name: str = typer.Argument(..., help="Dataset name (see `tenfold data list`).")) -> None:
    """Details of one dataset, and whether it is available on this machine."""
    from tenfold.data.registry import get_dataset

    d = get_dataset(name)
    for key, value in d.describe().items():
        typer.echo(f"{key:>12}: {value}")


@zoo_app.command("list")
def zoo_list() -> None:
    """Every zoo model: name, size, training data, status (built or not)."""
    from tenfold.zoo.registry import all_models

    rows = [(m.name, m.size, m.data, "built" if m.is_built() else "not built", str(m.path())) for m in all_models()]
    _print_table(("name", "size", "data", "status", "path"), rows)


@zoo_app.command("build")
def zoo_build(
    name: str = typer.Argument(..., help="Zoo entry (see `tenfold zoo list`)."),
    force: bool = typer.Option(False, help="Rebuild even if cached."),
    text: Path = typer.Option(None, help="tiny-lm only: train on this UTF-8 text file instead of the default corpus."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Train a zoo model deterministically and cache it (a save_pretrained folder)."""
    from tenfold.zoo.registry import get_model

    model = get_model(name)
    options = {"text": text} if text is not None else {}
    report_ = model.build(force=force, seed=seed, **options)
    for key, value in report_.items():
        typer.echo(f"{key:>22}: {value}")


def _print_table(header, rows) -> None:
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


LONG_COMMAND_SECONDS = 20.0


def _fail(message: str, code: int = 2) -> None:
    """One line on stderr and the exit code: the whole error contract of the command line."""
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


INTERRUPTED = "interrupted; outputs written so far are complete (atomic), and long runs resume from their checkpoint"


def _out_of_memory(err: BaseException) -> bool:
    """MemoryError, or torch's allocator refusing a size (a RuntimeError on CPU, OutOfMemoryError on CUDA)."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err)
    return "can't allocate memory" in text or "Storage size calculation overflowed" in text


def main(argv: list[str] | None = None) -> None:
    """Console entry point and the CLI's one error boundary.

    A usage error (unknown option, bad value), a TenfoldError, or an OS error (a file that cannot be
    read or written) is one line on stderr and exit 2; --debug shows the traceback instead. A command
    that ran for a while ends with its device, dtype and peak memory on stderr.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    start = time.perf_counter()
    try:
        if not args:
            args = ["--help"]
        code = app(args=args, prog_name="tenfold", standalone_mode=False)
    except USAGE_ERRORS as err:
        if debug:
            raise
        if type(err).__name__ == "NoArgsIsHelpError":  # a group called bare: its help is shown, not an error
            sys.exit(0)
        where = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else " (see `tenfold --help`)"
        _fail(err.format_message().replace("\n", " ") + where)
    except ABORTS as err:
        if isinstance(err.__cause__, EOFError):  # click turns an EOFError (a loader hit an empty file) into Abort
            if _state["debug"] or debug:
                raise
            _fail("an input ended early (an empty or truncated file?): check the files given; --debug shows which")
        _fail(INTERRUPTED, 130)
    except KeyboardInterrupt:
        _fail(INTERRUPTED, 130)
    except DryRunStop as stop:
        typer.echo(f"ok: {stop}", err=True)
        sys.exit(0)
    except TenfoldError as err:
        if _state["debug"] or debug:
            raise
        _fail(str(err).replace("\n", " "), err.exit_code)
    except (MemoryError, RuntimeError) as err:
        if _state["debug"] or debug or not _out_of_memory(err):
            raise
        _fail(f"not enough memory for this input ({str(err).splitlines()[0][:160]}): reduce the sizes asked for")
    except pickle.UnpicklingError as err:
        if _state["debug"] or debug:
            raise
        _fail(f"refused to load a pickled file that holds more than plain tensors ({str(err).splitlines()[0][:120]}): "
              "tenfold loads weights as safetensors or weights-only pickles; convert the model with save_pretrained "
              "(safe_serialization=True) from code you trust")
    except OSError as err:
        if _state["debug"] or debug:
            raise
        where = f"{err.filename}: " if err.filename else ""
        _fail(f"{where}{err.strerror or err} (check the path and its permissions; --debug shows where)")
    code = code if isinstance(code, int) else 0
    if code == 0 and time.perf_counter() - start > LONG_COMMAND_SECONDS:
        from tenfold.core.accel import device_summary
        from tenfold.core.progress import say

        say(f"[tenfold] {device_summary()}")
    sys.exit(code)


if __name__ == "__main__":
    main()
