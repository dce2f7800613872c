"""End to end on tiny inputs: the CLI verbs (generate, train, predict, evaluate) and `reproduce`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tenfold.core.errors import InputError
from tenfold.ind.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_cli_pipeline_generate_train_predict_evaluate(tmp_path, long_lm_dir):
    data, model, sub = tmp_path / "data", tmp_path / "model", tmp_path / "sub.json"
    r = runner.invoke(app, ["generate", "--out", str(data), "--train-authors", "4", "--valid-authors", "2", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert "synthetic" in r.output
    r = runner.invoke(app, ["train", "--data", str(data), "--model", str(model), "--lm", str(long_lm_dir), "--profile", "smoke"])
    assert r.exit_code == 0, r.output
    for scorer in ("mind", "gccad"):
        r = runner.invoke(app, ["predict", "--data", str(data), "--model", str(model), "--out", str(sub), "--scorer", scorer])
        assert r.exit_code == 0, r.output
        scores = json.loads(sub.read_text())
        valid = json.loads((data / "ind_valid_author.json").read_text())
        assert set(scores) == set(valid)
        assert all(set(scores[a]) == set(valid[a]["papers"]) for a in valid)
        assert all(0.0 <= s <= 1.0 for v in scores.values() for s in v.values()) or scorer == "gccad"
        r = runner.invoke(app, ["evaluate", "--submission", str(sub), "--ground-truth", str(data / "ind_valid_author_ground_truth.json")])
        assert r.exit_code == 0 and "weighted AUC" in r.output, r.output


def test_cli_bad_inputs_raise_clear_errors(tmp_path):
    r = runner.invoke(app, ["train", "--data", str(tmp_path / "missing"), "--model", str(tmp_path / "m")])
    assert isinstance(r.exception, InputError) and "not a folder" in str(r.exception)
    r = runner.invoke(app, ["predict", "--data", str(tmp_path), "--model", str(tmp_path), "--out", str(tmp_path / "s.json"),
                            "--scorer", "magic"])
    assert isinstance(r.exception, InputError) and "--scorer" in str(r.exception)
    r = runner.invoke(app, ["evaluate", "--submission", str(tmp_path / "none.json"), "--ground-truth", str(tmp_path / "gt.json")])
    assert isinstance(r.exception, InputError)


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--train-authors", "10000000000000"], ["--valid-authors", "10000000000000"],
                                  ["--train-authors", "1"], ["--valid-authors", "0"]])
def test_generate_refuses_out_of_range_sizes_and_seeds_at_the_parser(tmp_path, args):
    r = runner.invoke(app, ["generate", "--out", str(tmp_path / "data"), *args])
    assert r.exit_code == 2 and "Invalid value" in r.output, r.output
    assert not (tmp_path / "data").exists()


def test_evaluate_refuses_a_paper_listed_as_both_normal_and_outlier(tmp_path):
    truth = {"a1": {"normal_data": ["p1", "p2"], "outliers": ["p2", "p3"]}}
    (tmp_path / "t.json").write_text(json.dumps(truth))
    (tmp_path / "s.json").write_text(json.dumps({"a1": {"p1": 0.9, "p2": 0.5, "p3": 0.1}}))
    res = runner.invoke(app, ["evaluate", "--submission", str(tmp_path / "s.json"),
                                   "--ground-truth", str(tmp_path / "t.json")])
    assert res.exit_code != 0 and "both normal and outlier (e.g. p2)" in str(res.exception)
