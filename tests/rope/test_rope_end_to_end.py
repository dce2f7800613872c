"""Training, accuracy, the CLI and a tiny reproduce."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tenfold.core.runtime import torch_threads
from tenfold.rope import FormulaTransformer, ModelConfig, TrainConfig, Vocab, accuracy, dataset, train_model
from tenfold.rope.cli import app


def test_training_learns_depth_one_boolean_formulas():
    vocab = Vocab.build("boolean")
    data = dataset("boolean", [1], 40, "postfix", 2, 0)  # only 10 distinct depth-1 formulas exist
    model = FormulaTransformer(ModelConfig(len(vocab), 32, 2, 1, 64))
    with torch_threads(1):  # tiny matrices: extra threads only add contention
        train_model(model, data, vocab, TrainConfig(steps=120, batch=32, lr=1e-2))
    assert accuracy(model, data, vocab) >= 0.9


def test_cot_accuracy_runs_greedy_decoding():
    vocab = Vocab.build("arithmetic", 3)
    data = dataset("arithmetic", [1, 2], 10, "postfix", 3, 0)
    model = FormulaTransformer(ModelConfig(len(vocab), 16, 2, 1, 32))
    acc = accuracy(model, data, vocab, cot=True)
    assert 0.0 <= acc <= 1.0


def test_cli_generate_then_train(tmp_path):
    runner = CliRunner()
    train_file, test_file = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    res = runner.invoke(app, ["generate", "--task", "boolean", "--depth", "2", "--n", "30", "--encoding", "infix",
                              "--out", str(train_file)])
    assert res.exit_code == 0, res.output
    row = json.loads(train_file.read_text().splitlines()[0])
    assert row["depth"] == 2 and set(row) == {"tokens", "answer", "depth", "size"}
    runner.invoke(app, ["generate", "--task", "boolean", "--depth", "3", "--n", "10", "--encoding", "infix",
                        "--out", str(test_file)])
    res = runner.invoke(app, ["train", "--data", str(train_file), "--test", str(test_file), "--encoding", "infix",
                              "--steps", "5", "--layers", "1", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "3" in json.loads(res.output)["accuracy_by_depth"]
    assert (tmp_path / "m" / "model.safetensors").is_file()
    res = runner.invoke(app, ["generate", "--depth", "-2", "--out", str(train_file)])
    assert res.exit_code != 0 and "depth must be" in str(res.exception)


def test_tiny_reproduce_has_every_metric_and_plot(tmp_path, monkeypatch):
    from tenfold.rope import experiment
    from tenfold.rope.sweeps import SweepConfig

    small = dict(train_depth=1, test_depth=2, n_train_per_depth=20, n_test_per_depth=5, d_model=8,
                 train=TrainConfig(steps=2, batch=8))
    tiny = experiment.Profile(SweepConfig("boolean", 2, **small), SweepConfig("arithmetic", 3, **small), layers=(1, 2))
    monkeypatch.setitem(experiment.PROFILES, "quick", tiny)
    result = experiment.reproduce("quick", 0, tmp_path)
    m = result.metrics
    assert set(m["acc"]) == {"rope", "nope", "absolute", "alibi"} and set(m["acc"]["rope"]) == {"1", "2"}
    assert set(m["acc"]["rope"]["1"]) == {"1", "2"} and set(m["acc_arith"]) == set(m["acc"])
    assert set(m["looped_acc"]) == {"1", "2"} and set(m["cot_acc"]) == {"1", "2"}
    assert len(result.claims) == 3 and all((tmp_path / a).is_file() for a in result.artifacts)
