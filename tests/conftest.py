"""Shared test set-up: an isolated $TENFOLD_HOME, quiet output, and small zoo models built in seconds."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="tenfold-test-home-")
os.environ["TENFOLD_HOME"] = _HOME  # tests never touch the user's cache
os.environ["TENFOLD_QUIET"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_lm_dir() -> Path:
    """A ~150k-parameter LLaMA causal LM + tokenizer (save_pretrained folder), trained in ~5 s."""
    from tenfold.core.io import atomic_write_json
    from tenfold.zoo.tiny_lm import build_tiny_lm

    folder = Path(tempfile.mkdtemp(prefix="tiny-lm-", dir=_HOME))
    report = build_tiny_lm(folder, seed=0, small=True, text="python-topics")
    atomic_write_json(folder / "zoo.json", {"name": "tiny-lm-small", "seed": 0, **report})  # as a zoo build writes
    return folder


@pytest.fixture(scope="session")
def tiny_lm(tiny_lm_dir):
    """(model, tokenizer) of the small tiny-lm; do not modify the model in place (copy.deepcopy it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_lm_dir), AutoTokenizer.from_pretrained(tiny_lm_dir)


@pytest.fixture
def two_process_launch():
    """launch(args, env, timeout=600) runs `python args...` as two gloo processes on CPU under `accelerate launch`
    (accelerate 1.x's `--cpu` launches one; `--multi_gpu` with tenfold's CPU device gives
    DistributedType.MULTI_CPU), on a free rendezvous port so two suites on one machine never meet on 29500, and
    fails the test with the launcher's stderr unless it exits 0; skips when accelerate's launcher is missing."""
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("accelerate's launcher is not installed")

    def launch(args, env: dict, timeout: int = 600) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port",
               str(port), "--mixed_precision", "no", "--dynamo_backend", "no", *map(str, args)]
        done = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
        assert done.returncode == 0, f"two-process run failed (exit {done.returncode}):\n{done.stderr[-3000:]}"

    return launch


@pytest.fixture
def one_and_two_processes(tmp_path, two_process_launch):
    """run(script, *args, suffix=".json") runs `script *args OUT` once as one process and once as two gloo
    processes (`two_process_launch`) and returns the two outputs' paths."""

    def run(script: Path, *args, suffix: str = ".json", timeout: int = 600) -> tuple[Path, Path]:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TENFOLD_DEVICE": "cpu"}
        one, two = tmp_path / f"one{suffix}", tmp_path / f"two{suffix}"
        subprocess.run([sys.executable, str(script), *map(str, args), str(one)], check=True, env=env, timeout=timeout)
        two_process_launch([script, *args, two], env, timeout)
        return one, two

    return run


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip cleanly where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run `make gpu-check` on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
