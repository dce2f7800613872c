"""Atomic writes survive a crash mid-write; safetensors and checkpoints round-trip and resume."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tenfold.core.errors import CacheError, SchemaError
from tenfold.core.io import (
    Checkpoint,
    atomic_write,
    atomic_write_text,
    load_tensors,
    save_tensors,
    tenfold_home,
)


def test_crash_during_write_leaves_the_old_file_intact(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")

    def crash(tmp):
        tmp.write_text("half of the new")
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left behind


def test_killed_process_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "big.txt"
    atomic_write_text(target, "old")
    code = (
        "import os, sys; from tenfold.core.io import atomic_write\n"
        "def w(tmp):\n"
        "    tmp.write_text('x' * 1000)\n"
        "    os._exit(9)  # killed before the rename\n"
        f"atomic_write({str(target)!r}, w)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == 9
    assert target.read_text() == "old"


def test_output_path_that_is_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("i am a file")
    with pytest.raises(CacheError, match="is a file"):
        atomic_write_text(blocker / "result.json", "{}")
    assert blocker.read_text() == "i am a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("TENFOLD_HOME", str(ro / "home"))
    with pytest.raises(CacheError):
        tenfold_home()


def test_safetensors_round_trip(tmp_path):
    t = {"a": torch.randn(3, 4, dtype=torch.float64), "b": torch.arange(5)}
    save_tensors(tmp_path / "t.safetensors", t)
    back = load_tensors(tmp_path / "t.safetensors")
    assert torch.equal(back["a"], t["a"]) and torch.equal(back["b"], t["b"])


def test_damaged_safetensors_is_a_schema_error(tmp_path):
    p = tmp_path / "t.safetensors"
    p.write_bytes(b"garbage")
    with pytest.raises(SchemaError):
        load_tensors(p)


def test_checkpoint_resumes_a_loop_to_the_same_result(tmp_path):
    def run(steps, ckpt, stop_at=None):
        state = ckpt.load({"w": torch.zeros(3), "step": 0, "opt": {"lr": [0.1], "m": {"x": torch.ones(2)}}})
        for step in range(state["step"], steps):
            if stop_at is not None and step == stop_at:
                return None
            state["w"] = state["w"] + step
            state["step"] = step + 1
            ckpt.save(state)
        return state

    full = run(10, Checkpoint(tmp_path / "a"))
    interrupted = Checkpoint(tmp_path / "b")
    assert run(10, interrupted, stop_at=6) is None
    resumed = run(10, interrupted)
    assert torch.equal(full["w"], resumed["w"]) and resumed["step"] == 10
    assert resumed["opt"]["lr"] == [0.1] and torch.equal(resumed["opt"]["m"]["x"], torch.ones(2))
