"""End to end: the CLI verbs on a toy atomic folder, errors as one line, a killed `relife train` that
resumes to the same weights, and the smoke reproduce."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from tenfold.core.io import Checkpoint, load_tensors, read_json
from tenfold.relife.cli import app

runner = CliRunner()
SIMULATE = ["simulate", "--list-len", "5", "--history", "2", "--lists-per-user", "4", "--test-lists", "1"]


def test_cli_simulates_trains_and_evaluates(toy_atomic, tmp_path):
    lists, model = tmp_path / "lists", tmp_path / "model"
    r = runner.invoke(app, [*SIMULATE, "--data", str(toy_atomic), "--out", str(lists)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "--lists", str(lists), "--out", str(model), "--max-epochs", "1", "--dim", "8"])
    assert r.exit_code == 0, r.output
    assert not list(model.glob("checkpoint-*"))  # the checkpoint is cleared once the model is saved
    r = runner.invoke(app, ["evaluate", "--lists", str(lists), "--model", str(model), "--out", str(tmp_path / "m.json"),
                            "--draws", "2"])
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["regime"] == "simulated" and 0 <= record["metrics"]["ndcg@5"] <= 1
    assert record["metrics"]["expected_clicks"] > 0
    r = runner.invoke(app, ["build-lists", "--data", str(toy_atomic), "--out", str(tmp_path / "logged"),
                            "--list-len", "5", "--history", "2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "--lists", str(tmp_path / "logged"), "--out", str(tmp_path / "m2"), "--model", "mir",
                            "--max-epochs", "1", "--dim", "8"])
    assert r.exit_code == 0, r.output


def test_cli_reports_bad_input_as_a_tenfold_error(toy_atomic, tmp_path):
    r = runner.invoke(app, ["evaluate", "--lists", str(tmp_path), "--model", str(tmp_path)])
    assert r.exit_code != 0 and "lists.json" in str(r.exception)
    r = runner.invoke(app, ["train", "--lists", str(tmp_path), "--out", str(tmp_path / "m")])
    assert "build-lists" in str(r.exception)
    r = runner.invoke(app, [*SIMULATE, "--data", str(toy_atomic), "--out", str(tmp_path / "s"), "--beta", "-1"])
    assert "beta" in str(r.exception)


@pytest.mark.parametrize("option, value, word", [("--history", "10000000000000", "history_lists"),
                                                 ("--lists-per-user", "10000000000000", "lists_per_user"),
                                                 ("--list-len", "10000000000000", "list_len"),
                                                 ("--beta", "nan", "beta"), ("--noise", "inf", "ranker_noise"),
                                                 ("--eta", "1e308", "eta"), ("--stop", "nan", "stop")])
def test_simulate_refuses_a_huge_or_non_finite_setting_before_any_work(toy_atomic, tmp_path, option, value, word):
    r = runner.invoke(app, [*SIMULATE, "--data", str(toy_atomic), "--out", str(tmp_path / "s"), option, value])
    assert r.exit_code != 0 and word in str(r.exception)
    assert not (tmp_path / "s").exists()  # refused before the output folder was made


@pytest.fixture(scope="module")
def toy_lists(toy_atomic, tmp_path_factory):
    lists = tmp_path_factory.mktemp("relife-cli") / "lists"
    assert runner.invoke(app, [*SIMULATE, "--data", str(toy_atomic), "--out", str(lists)]).exit_code == 0
    return lists


def test_seeds_the_parser_allows_are_the_ones_every_library_accepts(toy_atomic, tmp_path):
    for seed in ("-1", str(2**31)):
        r = runner.invoke(app, [*SIMULATE, "--data", str(toy_atomic), "--out", str(tmp_path / "s"), "--seed", seed])
        assert r.exit_code == 2 and "--seed" in r.output


@pytest.mark.parametrize("option, value, word", [("--lr", "nan", "lr"), ("--dim", "10000000000000", "dim"),
                                                 ("--max-epochs", "10000000000000", "max_epochs"),
                                                 ("--cl-weight", "inf", "cl_weight")])
def test_train_refuses_a_huge_or_non_finite_setting(toy_lists, tmp_path, option, value, word):
    r = runner.invoke(app, ["train", "--lists", str(toy_lists), "--out", str(tmp_path / "m"), option, value])
    assert r.exit_code != 0 and word in str(r.exception)
    assert not (tmp_path / "m").exists()


def _train_cmd(lists, out) -> list[str]:
    return [sys.executable, "-m", "tenfold.cli", "--threads", "1", "relife", "train", "--lists", str(lists), "--out",
            str(out), "--max-epochs", "6", "--patience", "6", "--dim", "8", "--batch-size", "8"]


@pytest.mark.slow
def test_a_sigkilled_train_resumes_to_the_weights_of_an_uninterrupted_run(toy_atomic, tmp_path):
    lists = tmp_path / "lists"
    assert runner.invoke(app, [*SIMULATE, "--data", str(toy_atomic), "--out", str(lists), "--lists-per-user", "8"]).exit_code == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(lists, tmp_path / "whole"), check=True, env=env, timeout=900, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(lists, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if (killed / "checkpoint-model.json").exists():
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if (killed / "model.safetensors").exists():
        pytest.skip("the run finished before it could be killed")
    assert Checkpoint(killed, "checkpoint-model").load()["epoch"] >= 1  # a finished epoch's checkpoint survived
    subprocess.run(_train_cmd(lists, killed), check=True, env=env, timeout=900, capture_output=True)
    a, b = load_tensors(tmp_path / "whole" / "model.safetensors"), load_tensors(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_json(killed / "model.json")["best_epoch"] == read_json(tmp_path / "whole" / "model.json")["best_epoch"]


def test_reproduce_smoke_profile_writes_every_model_claim_and_the_plot(tmp_path):
    from tenfold.data.movielens import recbole_ml100k_dir

    if recbole_ml100k_dir() is None:
        pytest.skip("MovieLens-100K needs the recbole package")
    from tenfold.relife.experiment import reproduce
    from tenfold.relife.train import MODELS

    result = reproduce("smoke", 0, tmp_path)
    assert set(result.metrics["simulated"]) == set(MODELS) | {"oracle-beta", "oracle-history", "oracle-mean", "oracle-sort"}
    assert "relife-no-cpe" not in result.metrics["logged"] and "relife" in result.metrics["logged"]
    assert len(result.claims) == 23 and (tmp_path / "relife_ndcg5.png").is_file()
    assert all(c.interval is not None and c.evidence for c in result.claims)
    assert result.metrics["overlap"]["simulated"] == {"test_in_train": 0, "test_in_val": 0}
