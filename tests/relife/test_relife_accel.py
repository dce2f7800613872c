"""relife's training loop on accelerate: two gloo processes on CPU match one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tenfold.data.lists import ListConfig, SimulatorConfig, build_simulated_lists
from tenfold.data.movielens import load_atomic

SCRIPT = Path(__file__).parent / "scripts" / "ddp_fit.py"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["setrank", "relife-no-cl"])
def test_two_cpu_processes_train_the_same_weights_as_one(toy_atomic, tmp_path, name, two_process_launch):
    lists = tmp_path / "lists"
    build_simulated_lists(load_atomic(toy_atomic), ListConfig(list_len=5, history_lists=2, ranker_epochs=5),
                          SimulatorConfig(lists_per_user=6, test_lists=1)).save(lists)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TENFOLD_DEVICE": "cpu"}
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, str(SCRIPT), str(lists), name, str(one)], check=True, env=env, timeout=600)
    two_process_launch([SCRIPT, lists, name, two], env)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["processes"] == 1 and b["processes"] == 2
    # the same global batches: each process takes half and DDP averages the gradients (float32 round-off)
    assert torch.allclose(torch.tensor(a["weights"]), torch.tensor(b["weights"]), atol=2e-4)
    assert a["val"] == pytest.approx(b["val"], abs=1e-4)


@pytest.mark.gpu
def test_training_and_scoring_run_on_cuda_and_agree_with_the_cpu(toy_atomic, monkeypatch):
    from tenfold.core.runtime import seed_everything
    from tenfold.relife.train import TrainConfig, predict, train_model

    sim = build_simulated_lists(load_atomic(toy_atomic), ListConfig(list_len=5, history_lists=2, ranker_epochs=5),
                                SimulatorConfig(lists_per_user=6, test_lists=1))
    cfg = TrainConfig(max_epochs=1, batch_size=16, seed=0)
    runs = {}
    for device in ("cpu", "cuda"):
        monkeypatch.setenv("TENFOLD_DEVICE", device)
        seed_everything(0)
        model, _ = train_model("relife", sim, cfg, "intent", dim=8)
        assert next(model.parameters()).device.type == device
        runs[device] = predict(model, sim.test)
    assert torch.allclose(torch.tensor(runs["cpu"]), torch.tensor(runs["cuda"]), atol=1e-3)
