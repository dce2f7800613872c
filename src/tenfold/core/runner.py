"""Run a registered method's reproduce/bench into `out/<method>/` and record how it went.

Shared by `tenfold reproduce` (all methods) and `tenfold <method> reproduce|bench` (one method), so
every result.json gets the same environment record, wall time and failure handling.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from tenfold.core.errors import InputError, TenfoldError
from tenfold.core.io import ensure_writable_dir
from tenfold.core.progress import say
from tenfold.core.registry import MethodSpec
from tenfold.core.results import Result
from tenfold.core.runtime import environment, seed_everything, work_starts

# smoke: each method end to end in seconds (tests, `make gpu-check`); quick: 2 CPU cores; full: a GPU
PROFILES = ("smoke", "quick", "full")


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise InputError(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return profile


MAX_SEEDS = 100
# every library we seed takes a 32-bit signed seed (sklearn's random_state < 2**32, C ints in torch
# and numba), and runs use seed, seed + 1, ... seed + seeds - 1
MAX_SEED = 2**31 - 1 - MAX_SEEDS


def check_seeds(seeds: int | None, seed: int = 0) -> int | None:
    """--seed is 0..MAX_SEED; --seeds (how many) is 1 to MAX_SEEDS."""
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"--seed must be an integer from 0 to {MAX_SEED}, got {seed}")
    if seeds is not None and not 1 <= seeds <= MAX_SEEDS:
        raise InputError(f"--seeds must be between 1 and {MAX_SEEDS}, got {seeds}")
    return seeds


def run_method(spec: MethodSpec, kind: str, profile: str, seed: int, out: Path, fail_fast: bool = False,
               seeds: int | None = None) -> Result:
    """Run `spec`'s `kind` ('reproduce' or 'bench') and write out/<name>/result.json.

    A method that raises is recorded as a failed result (with its traceback) instead of stopping the
    whole run; `fail_fast` re-raises instead, for the single-method commands.
    """
    check_profile(profile)
    check_seeds(seeds, seed)
    folder = Path(out) / spec.name
    ensure_writable_dir(folder)
    work_starts(f"{spec.name} {kind}")
    seed_everything(seed)
    start = time.perf_counter()
    say(f"[tenfold] {spec.name} {kind} ({profile}) -> {folder}")
    try:
        result = spec.run(kind, profile=profile, seed=seed, out=folder, seeds=seeds)
        if not isinstance(result, Result):
            raise TypeError(f"{spec.name}.{kind} returned {type(result).__name__}, not a Result")
    except Exception as err:
        if fail_fast or isinstance(err, KeyboardInterrupt):
            raise
        detail = str(err) if isinstance(err, TenfoldError) else traceback.format_exc()
        result = Result(method=spec.name, kind=kind if kind in ("reproduce", "bench") else "run",
                        paper={"title": spec.title, "arxiv": spec.arxiv}, profile=profile, seed=seed,
                        status="failed", error=detail)
    result.environment = {**environment(), **result.environment}
    if result.wall_seconds is None:
        result.wall_seconds = round(time.perf_counter() - start, 3)
    result.write(folder)
    counts = result.verdict_counts()
    held = (f"{counts['holds']} hold, {counts['inconclusive']} inconclusive, {counts['fails']} fail"
            if result.claims else "no claims")
    say(f"[tenfold] {spec.name} {kind}: {result.status}, {held}, {result.wall_seconds:.1f}s")
    return result
