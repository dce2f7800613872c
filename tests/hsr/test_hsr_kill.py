"""dump-keys killed with SIGKILL mid-run leaves no partial dump, and a rerun writes the dump an
uninterrupted run writes (issue 27: the verb restarts cleanly; its output is written atomically)."""

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


def _dump(model: Path, out: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "tenfold.cli", "--threads", "1", "--quiet", "hsr", "dump-keys", "--model", str(model),
            "--text", "python-topics", "--tokens", "1024", "--chunk", "8", "--out", str(out)]
    return subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1", "TENFOLD_DEVICE": "cpu"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow  # three CLI processes importing torch and transformers (~30-60 s on the shared machine)
def test_killed_dump_leaves_no_partial_file_and_a_rerun_matches_an_uninterrupted_one(tiny_lm_dir, tmp_path):
    fresh = tmp_path / "fresh" / "keys.safetensors"
    start = time.time()
    proc = _dump(tiny_lm_dir, fresh)
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()
    whole = time.time() - start
    killed = tmp_path / "killed" / "keys.safetensors"
    proc = _dump(tiny_lm_dir, killed)
    time.sleep(0.8 * whole)  # the dump loop runs last, after the imports and the model load
    interrupted = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reference = load_file(str(fresh))
    if killed.exists():  # only a finished dump may be there: the file is renamed into place whole
        assert not interrupted or set(load_file(str(killed))) == set(reference)
    assert _dump(tiny_lm_dir, killed).wait(timeout=600) == 0  # the rerun
    again = load_file(str(killed))
    assert set(again) == set(reference)
    for name, tensor in reference.items():
        assert torch.equal(again[name], tensor), name
