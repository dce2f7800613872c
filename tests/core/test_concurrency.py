"""Two tenfold processes on one $TENFOLD_HOME: a zoo model is built once, a killed build blocks nobody."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BUILD = """
import sys, time
from pathlib import Path
from tenfold.zoo.registry import ZooSpec
counter, pause = Path(sys.argv[1]), float(sys.argv[2])

def builder(folder, seed=0):
    with open(counter, "a") as f:
        f.write("built\\n")
    (folder / "weights.txt").write_text("w" * 1000)
    time.sleep(pause)
    return {"ok": True}

report = ZooSpec("race-entry", "1", "none", "test", builder).build()
print("cached" if report["cached"] else "built")
"""


def _start(home: Path, counter: Path, pause: float) -> subprocess.Popen:
    env = {**os.environ, "TENFOLD_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-c", BUILD, str(counter), str(pause)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_building_one_zoo_model_build_it_once(tmp_path):
    counter = tmp_path / "count.txt"
    first, second = _start(tmp_path, counter, 2.0), _start(tmp_path, counter, 2.0)
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in (first, second))
    assert first.returncode == 0 and second.returncode == 0
    assert outs == ["built", "cached"]
    assert counter.read_text().count("built") == 1
    entry = tmp_path / "zoo" / "race-entry"
    assert (entry / "zoo.json").is_file() and (entry / "weights.txt").read_text() == "w" * 1000


def test_a_build_killed_mid_way_neither_blocks_the_next_nor_leaves_half_a_model(tmp_path):
    counter = tmp_path / "count.txt"
    victim = _start(tmp_path, counter, 60.0)
    deadline = time.time() + 60
    while not (counter.exists() and counter.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    zoo = tmp_path / "zoo"
    assert not (zoo / "race-entry").exists()  # nothing half-built is in place
    assert list(zoo.glob(".race-entry.building-*"))  # the killed build's work folder is left behind
    start = time.time()
    survivor = _start(tmp_path, counter, 0.1)
    assert survivor.communicate(timeout=120)[0].strip() == "built" and survivor.returncode == 0
    assert time.time() - start < 60  # the dead process's lock did not block
    assert not list(zoo.glob(".race-entry.building-*"))  # and its leftovers were cleaned up
    assert counter.read_text().count("built") == 2
