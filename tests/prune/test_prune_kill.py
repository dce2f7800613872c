"""`tenfold prune run` killed with SIGKILL mid-run leaves no output that could be read as complete, and
the rerun ends with the same model as an uninterrupted run (a clean restart: pruning is one pass)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def _start(model_dir: Path, out: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "TENFOLD_QUIET"}
    cmd = [sys.executable, "-m", "tenfold", "--threads", "1", "prune", "run", "--model", str(model_dir),
           "--ratio", "0.4", "--calib", "64", "--seq-len", "64", "--out", str(out)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _same(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]


@pytest.fixture(scope="module")
def reference(lm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "pruned"
    _finish(_start(lm_dir, out))
    return out


def test_killed_while_pruning_leaves_nothing_and_the_rerun_matches(lm_dir, reference, tmp_path):
    out = tmp_path / "pruned"
    victim = _start(lm_dir, out)
    for line in victim.stderr:  # wait until the pruning itself has started
        if line.startswith("[prune] pruning"):
            break
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert not out.exists()
    _finish(_start(lm_dir, out))
    assert _same(out, reference)


def test_killed_while_saving_never_leaves_a_half_written_model_in_place(lm_dir, reference, tmp_path):
    out = tmp_path / "pruned"
    victim = _start(lm_dir, out)
    deadline = time.time() + 600
    while not list(tmp_path.glob(".pruned.partial-*")) and victim.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert not out.exists() or _same(out, reference)  # either absent or the finished model, never half of one
    _finish(_start(lm_dir, out))
    assert _same(out, reference)
    assert not list(tmp_path.glob(".pruned.partial-*"))  # the dead run's partial folder was cleared
