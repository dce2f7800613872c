"""A MIND stage killed with SIGKILL resumes to the same result as an uninterrupted run, and two
data-parallel CPU processes (gloo) train it like one process on the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tenfold.core.io import Checkpoint
from tenfold.data.whoiswho import GeneratorConfig, generate_ind

SCRIPT = Path(__file__).parent / "scripts" / "mind_stage.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TENFOLD_DEVICE": "cpu", "TENFOLD_QUIET": "1"}


def _data(folder: Path) -> Path:
    generate_ind(folder, 2, GeneratorConfig(n_train=6, n_valid=1, min_papers=8, max_papers=10))
    return folder


def _run(tiny_lm_dir, data, run_dir, out, steps, batch, *extra, launch=None, wait=True):
    """The stage script as one process, or as two under `launch` (the two_process_launch fixture)."""
    args = [str(SCRIPT), str(tiny_lm_dir), str(data), str(run_dir), str(out), str(steps), str(batch), *extra]
    if not wait:
        return subprocess.Popen([sys.executable, *args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if launch:
        launch(args, ENV)
    else:
        subprocess.run([sys.executable, *args], check=True, env=ENV, timeout=600, capture_output=True)
    return json.loads(Path(out).read_text())


@pytest.mark.slow
def test_sigkill_mid_stage_then_rerun_ends_like_an_uninterrupted_run(tmp_path, tiny_lm_dir):
    data = _data(tmp_path / "data")
    reference = _run(tiny_lm_dir, data, tmp_path / "ref", tmp_path / "ref.json", 12, 1)
    proc = _run(tiny_lm_dir, data, tmp_path / "run", tmp_path / "run.json", 12, 1, "--slow", wait=False)
    ckpt = Checkpoint(tmp_path / "run" / "stage1-state")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and ckpt.load()["step"] >= 3:  # the script pauses 0.3 s after each checkpoint
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the stage finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "stage1.safetensors").exists() and not (tmp_path / "run.json").exists()
    resumed = _run(tiny_lm_dir, data, tmp_path / "run", tmp_path / "run.json", 12, 1)
    assert resumed["losses"] == reference["losses"]
    for k, v in reference["weights"].items():
        assert torch.allclose(torch.tensor(resumed["weights"][k]), torch.tensor(v), atol=1e-6), k


@pytest.mark.slow
def test_two_gloo_processes_train_a_stage_like_one_process(tmp_path, tiny_lm_dir, two_process_launch):
    data = _data(tmp_path / "data")
    one = _run(tiny_lm_dir, data, tmp_path / "one", tmp_path / "one.json", 3, 2)
    two = _run(tiny_lm_dir, data, tmp_path / "two", tmp_path / "two.json", 3, 2, launch=two_process_launch)
    assert one["processes"] == 1 and two["processes"] == 2
    assert two["losses"] == pytest.approx(one["losses"], abs=1e-4)
    for k, v in one["weights"].items():
        assert torch.allclose(torch.tensor(two["weights"][k]), torch.tensor(v), atol=1e-4), k
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
