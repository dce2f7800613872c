"""End to end: the CLI verbs on a toy atomic folder, errors as one line, and a tiny reproduce."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tenfold.relife.cli import app

runner = CliRunner()


def test_cli_builds_lists_trains_and_evaluates(toy_atomic, tmp_path):
    lists, model = tmp_path / "lists", tmp_path / "model"
    r = runner.invoke(app, ["simulate", "--data", str(toy_atomic), "--out", str(lists), "--list-len", "5",
                            "--history", "2", "--lists-per-user", "3", "--beta", "0.5"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "--lists", str(lists), "--out", str(model), "--epochs", "1", "--dim", "8"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evaluate", "--lists", str(lists), "--model", str(model), "--out", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["regime"] == "simulated" and 0 <= record["metrics"]["ndcg@5"] <= 1
    assert record["metrics"]["expected_clicks"] > 0
    r = runner.invoke(app, ["build-lists", "--data", str(toy_atomic), "--out", str(tmp_path / "logged"),
                            "--list-len", "5", "--history", "2"])
    assert r.exit_code == 0, r.output


def test_cli_reports_bad_input_as_a_tenfold_error(tmp_path):
    r = runner.invoke(app, ["evaluate", "--lists", str(tmp_path), "--model", str(tmp_path)])
    assert r.exit_code != 0
    assert "lists.json" in str(r.exception)
    r = runner.invoke(app, ["train", "--lists", str(tmp_path), "--out", str(tmp_path / "m")])
    assert "build-lists" in str(r.exception)


def test_reproduce_tiny_profile_writes_all_models_and_claims(tmp_path):
    from tenfold.data.movielens import recbole_ml100k_dir

    if recbole_ml100k_dir() is None:
        pytest.skip("MovieLens-100K needs the recbole package")
    from tenfold.relife.experiment import reproduce
    from tenfold.relife.train import MODELS

    result = reproduce("tiny", 0, tmp_path)
    assert set(result.metrics["logged"]) == set(MODELS)
    assert set(result.metrics["simulated"]) == {"beta=0.0", "beta=0.5"}
    assert "expected_clicks" in result.metrics["simulated"]["beta=0.5"]["relife"]
    assert len(result.claims) == 17 and (tmp_path / "relife_ndcg5.png").is_file()
    assert result.config["simulator"]["click"]["eta"] == 1.0
