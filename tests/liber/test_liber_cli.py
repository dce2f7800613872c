"""End to end through the CLI (partition -> summarize -> train -> evaluate) and a tiny reproduce."""

from __future__ import annotations

import json
from dataclasses import replace

from typer.testing import CliRunner

from tenfold.core.errors import InputError
from tenfold.liber.cli import app

runner = CliRunner()


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_cli_partition_summarize_incrementally_then_train_and_evaluate(tmp_path):
    state, texts, cache = tmp_path / "state.json", tmp_path / "texts.jsonl", tmp_path / "cache.sqlite"
    common = ["--data", "synthetic:40"]
    out = _ok(["partition", *common, "--rule", "count:20", "--state", str(state), "--until", "889000000"])
    assert "(synthetic)" in out
    first = _ok(["summarize", *common, "--state", str(state), "--cache", str(cache), "--out", str(texts)])
    n_first = len(texts.read_text().splitlines())
    assert "cache hits 0" in first and n_first > 0
    _ok(["partition", *common, "--state", str(state)])  # the rest of the stream
    second = _ok(["summarize", *common, "--state", str(state), "--cache", str(cache), "--out", str(texts)])
    records = [json.loads(x) for x in texts.read_text().splitlines()]
    assert len(records) > n_first and "rule-based stand-in, not an LLM" in records[0]["summary"]
    assert "cache hits 0" in second  # only the new partitions went to the generator
    again = _ok(["summarize", *common, "--state", str(state), "--cache", str(cache), "--out", str(tmp_path / "b.jsonl")])
    assert "new LLM calls 0" in again  # a full rerun is served by the cache

    model = tmp_path / "model"
    trained = json.loads(_ok(["train", *common, "--epochs", "1", "--cache", str(cache), "--out", str(model)])
                         .strip().splitlines()[-1])
    assert 0.5 < trained["test"]["auc"] <= 1.0
    evaluated = json.loads(_ok(["evaluate", "--model", str(model)]).strip().splitlines()[-1])
    assert abs(evaluated["test"]["auc"] - trained["test"]["auc"]) < 1e-9 and evaluated["new_llm_calls"] == 0


def test_cli_errors_are_clear():
    result = runner.invoke(app, ["summarize", "--state", "/nonexistent/state.json", "--data", "synthetic"])
    assert isinstance(result.exception, InputError) and "liber partition" in str(result.exception)
    result = runner.invoke(app, ["train", "--data", "synthetic", "--llm", "openai", "--epochs", "1"])
    assert isinstance(result.exception, InputError) and "--llm-url" in str(result.exception)
    result = runner.invoke(app, ["partition", "--data", "synthetic", "--rule", "weekly", "--state", "/tmp/x-never.json"])
    assert isinstance(result.exception, InputError)


def test_reproduce_on_a_tiny_config_writes_the_issue_metrics(tmp_path):
    from tenfold.liber.experiment import PROFILES, reproduce

    result = reproduce("quick", 0, tmp_path, data="synthetic:40", cfg=replace(PROFILES["quick"], epochs=1),
                       models=("din", "din+liber"))
    m = result.metrics
    assert set(m["models"]) == {"din", "din+liber"} and {"auc", "logloss", "gauc"} <= set(m["models"]["din"])
    assert m["rerun_new_llm_calls"] == 0 and m["cache_hits"] > 0
    assert m["llm_calls_incremental"] >= 0 and m["llm_calls_recompute"] >= m["weekly_update"]["new_behaviours"]
    claims = {c.id: c for c in result.claims}
    assert claims["rerun_makes_no_new_calls"].holds
    assert (tmp_path / "auc_by_model.png").is_file()
    assert any("not an LLM" in n for n in result.notes) and any("synthetic" in n for n in result.notes)
