"""Data-parallel WGAE (issue 26): two gloo processes, each scoring half of the Weibull draws, end with the
parameters and topics of one process scoring all of them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "scripts" / "ddp_wgae.py"


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["gcn", "gat"])
def test_two_cpu_processes_train_wgae_like_one(tmp_path, encoder):
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("accelerate's launcher is not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TENFOLD_DEVICE": "cpu"}
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, str(SCRIPT), str(one), encoder], check=True, env=env, timeout=600)
    subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no", str(SCRIPT), str(two), encoder],
                   check=True, env=env, timeout=600, capture_output=True)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["processes"] == 1 and b["processes"] == 2
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:  # float32 sums in another order: equal to rounding
        assert torch.allclose(torch.tensor(a["state"][key]), torch.tensor(b["state"][key]), atol=1e-4, rtol=1e-4), key
    assert a["state"]["phi_step"] == b["state"]["phi_step"] == [3.0]  # the same TLASGR Phi updates in both runs
