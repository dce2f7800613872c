"""Data-parallel training (issue 26): two gloo processes on CPU end with the parameters of one process
(WGAE: each process scores half of the Weibull draws; VGAE: the same full batch), and only the main
process writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "scripts" / "ddp_wgae.py"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gcn", "gat", "vgae"])
def test_two_cpu_processes_train_like_one(tmp_path, model, two_process_launch):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TENFOLD_DEVICE": "cpu"}
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, str(SCRIPT), str(one), model], check=True, env=env, timeout=600)
    two_process_launch([SCRIPT, two, model], env)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["processes"] == 1 and b["processes"] == 2
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:  # float32 sums in another order: equal to rounding
        assert torch.allclose(torch.tensor(a["state"][key]), torch.tensor(b["state"][key]), atol=1e-4, rtol=1e-4), key
    if model != "vgae":
        assert a["state"]["phi_step"] == b["state"]["phi_step"] == [3.0]  # the same TLASGR Phi updates
        # the two-process checkpoint (saved by the main process only) has the one-process files
        assert sorted(p.name for p in (tmp_path / "two.ckpt").iterdir()) == \
            sorted(p.name for p in (tmp_path / "one.ckpt").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json") == ["one.json", "two.json"]
