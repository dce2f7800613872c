"""Sweeps as independent jobs: a sweep enumerates its runs once, in a fixed order, so a scheduler's
job array (Slurm `--array=0-N`, any queue) runs `--run-index I` on many nodes, each writing its own
result file, and a later step gathers them.

A method's sweep verb offers `--list` (one JSON line per job: index, id, parameters) and
`--run-index I` (run only job I); `select_job` is the one place that checks the index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from tenfold.core.errors import InputError


@dataclass(frozen=True)
class Job:
    """One run of a sweep: a stable id (used as its result file's name) and its parameters."""

    id: str
    params: dict = field(default_factory=dict)


def job_lines(jobs: Sequence[Job]) -> list[str]:
    """What `--list` prints: one JSON object per line, in run-index order."""
    return [json.dumps({"index": i, "id": job.id, **job.params}, sort_keys=False) for i, job in enumerate(jobs)]


def select_job(jobs: Sequence[Job], index: int) -> Job:
    """Job `index`, or a one-line error naming the valid range."""
    if not jobs:
        raise InputError("this sweep has no jobs: check its settings (sizes, budgets) with --list")
    if not 0 <= index < len(jobs):
        raise InputError(f"--run-index {index} is out of range: this sweep has {len(jobs)} jobs, 0 to {len(jobs) - 1} "
                         "(see --list)")
    return jobs[index]
