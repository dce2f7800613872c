"""A sweep killed with SIGKILL mid-run reruns only its missing jobs and ends with the rows of an
uninterrupted sweep (issue 27)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from plm_sequences import SEQS


def _sweep(fasta: Path, out: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "tenfold.cli", "--threads", "1", "--quiet", "plmscale", "sweep", "--fasta", str(fasta),
            "--out", str(out), "--budgets", "1e7,2e7", "--shapes", "8x1,16x1", "--objectives", "clm",
            "--seq-len", "16", "--batch-size", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TENFOLD_DEVICE": "cpu"}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _rows(out: Path) -> list[dict]:
    rows = [json.loads(f.read_text())["row"] for f in sorted((out / "runs").glob("*.json"))]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.slow  # three CLI processes (~45 s on the shared machine)
def test_killed_sweep_reruns_only_missing_jobs_and_matches_an_uninterrupted_one(tmp_path):
    fasta = tmp_path / "tiny.fasta"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(SEQS)))
    killed = tmp_path / "killed"
    proc = _sweep(fasta, killed)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (killed / "runs").is_dir() and any((killed / "runs").glob("*.json")):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-sweep: at least one run is finished, the next one is training
    proc.wait()
    survivors = {f: f.stat().st_mtime_ns for f in (killed / "runs").glob("*.json")}
    assert 1 <= len(survivors) < 4, "the kill should land between the first and the last run"
    assert not (killed / "runs.csv").exists()
    assert _sweep(fasta, killed).wait(timeout=600) == 0  # the rerun
    assert all(f.stat().st_mtime_ns == t for f, t in survivors.items())  # finished runs were not redone
    assert not list((killed / "runs").glob(".*.tmp"))  # no half-written file left behind
    fresh = tmp_path / "fresh"
    assert _sweep(fasta, fresh).wait(timeout=600) == 0
    assert _rows(killed) == _rows(fresh) and len(_rows(fresh)) == 4
    assert (killed / "runs.csv").read_text().count("\n") == 5
