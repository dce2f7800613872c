"""The generate and train verbs on files a user would write, and their one-line refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tenfold.rope.cli import app


def _generate(runner, path, *args):
    res = runner.invoke(app, ["generate", "--out", str(path), *args])
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generate_then_train_with_disjoint_files(tmp_path):
    runner = CliRunner()
    train = _generate(runner, tmp_path / "train.jsonl", "--size", "9", "--family", "skewed", "--n", "200", "--seed", "1")
    assert {row["size"] for row in train} == {9} and set(train[0]) == {"tokens", "answer", "depth", "size"}
    _generate(runner, tmp_path / "val.jsonl", "--size", "9", "--family", "skewed", "--n", "10", "--seed", "2", "--unique")
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "train.jsonl"), "--val", str(tmp_path / "val.jsonl"),
                              "--steps", "3", "--layers", "1", "--width", "16", "--out", str(tmp_path / "m")])
    # the files were drawn independently, so some validation formulas may also be training formulas: refused
    if res.exit_code == 0:
        assert json.loads(res.output)["splits"]["train_val_overlap"] == 0
        assert (tmp_path / "m" / "model.safetensors").is_file()
    else:
        assert "splits share formulas (train_val_overlap" in str(res.exception)


def test_train_refuses_a_validation_file_that_repeats_training_formulas(tmp_path):
    runner = CliRunner()
    _generate(runner, tmp_path / "train.jsonl", "--size", "7", "--n", "50", "--unique")
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "train.jsonl"), "--val", str(tmp_path / "train.jsonl"),
                              "--steps", "2", "--out", str(tmp_path / "m")])
    assert res.exit_code != 0 and "train_val_overlap = 50" in str(res.exception)


def test_generate_refuses_an_even_size_without_not():
    res = CliRunner().invoke(app, ["generate", "--size", "8", "--out", "x.jsonl"])
    assert res.exit_code != 0 and "odd number of nodes" in str(res.exception)


@pytest.mark.parametrize("args", [
    ["sweep", "--workers", "10000000000000"], ["sweep", "--seeds", "10000000000000"], ["sweep", "--seeds", "1"],
    ["sweep", "--seed", "-1"], ["generate", "--n", "10000000000000"], ["generate", "--size", "10000000000000"],
    ["train", "--data", "a", "--val", "b", "--width", "10000000000000"],
    ["train", "--data", "a", "--val", "b", "--steps", "10000000000000"],
])
def test_sizes_and_seeds_out_of_range_are_refused_by_the_parser(args):
    res = CliRunner().invoke(app, [*args, "--out", "never-written"])
    assert res.exit_code == 2 and "Invalid value" in res.output


def test_train_refuses_a_corrupted_file_a_nan_target_and_sequences_past_the_model(tmp_path):
    runner = CliRunner()
    garbage = tmp_path / "bad.jsonl"
    garbage.write_bytes(bytes(range(256)) * 4)
    _generate(runner, tmp_path / "val.jsonl", "--size", "7", "--n", "5", "--unique")
    res = runner.invoke(app, ["train", "--data", str(garbage), "--val", str(tmp_path / "val.jsonl"), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "bad.jsonl is not UTF-8 text" in str(res.exception)
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "val.jsonl"), "--val", str(garbage), "--target", "nan"])
    assert res.exit_code != 0 and "--target must be an accuracy in (0, 1], got nan" in str(res.exception)
    _generate(runner, tmp_path / "long.jsonl", "--size", "301", "--family", "skewed", "--n", "2")
    _generate(runner, tmp_path / "long-val.jsonl", "--size", "301", "--family", "skewed", "--n", "2", "--seed", "9")
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "long.jsonl"), "--val", str(tmp_path / "long-val.jsonl"),
                              "--cot", "--out", str(tmp_path / "m")])
    assert res.exit_code != 0 and "sequences of 602 positions" in str(res.exception) and "drop --cot" in str(res.exception)


def test_generate_exclude_makes_held_out_files_that_train_accepts(tmp_path):
    runner = CliRunner()
    common = ["--size", "9", "--family", "skewed"]
    train = _generate(runner, tmp_path / "train.jsonl", *common, "--n", "300", "--seed", "1")
    val = _generate(runner, tmp_path / "val.jsonl", *common, "--n", "50", "--seed", "2", "--unique",
                    "--exclude", str(tmp_path / "train.jsonl"))
    test = _generate(runner, tmp_path / "test.jsonl", *common, "--n", "50", "--seed", "3", "--unique",
                     "--exclude", str(tmp_path / "train.jsonl"), "--exclude", str(tmp_path / "val.jsonl"))
    seen = {tuple(r["tokens"]) for r in train}
    assert not seen & {tuple(r["tokens"]) for r in val} and not (seen | {tuple(r["tokens"]) for r in val}) & \
        {tuple(r["tokens"]) for r in test}
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "train.jsonl"), "--val", str(tmp_path / "val.jsonl"),
                              "--test", str(tmp_path / "test.jsonl"), "--steps", "3", "--layers", "1", "--width", "16",
                              "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["splits"]["train_val_overlap"] == report["splits"]["train_test_overlap"] == 0
