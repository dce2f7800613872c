"""End to end through the CLI (partition -> summarize -> train -> evaluate), the smoke reproduce (rules and a
served model), the AUC claims' trained negative control, and a SIGKILL in the middle of `summarize`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
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
    assert len(records) > n_first and "rule-based stand-in, not an LLM" in records[0]["text"]
    assert all(set(r["fields"]) == {"genre_scores", "mean_rating", "liked_share", "shift"} for r in records)
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
    result = runner.invoke(app, ["reproduce", "--profile", "smoke", "--llm-url", "http://127.0.0.1:1/v1"])
    assert isinstance(result.exception, InputError) and "--llm openai" in str(result.exception)
    result = runner.invoke(app, ["train", "--data", "synthetic", "--llm-fields", "yaml"])
    assert isinstance(result.exception, InputError) and "--llm-fields" in str(result.exception)


@pytest.mark.parametrize("args", [
    ["train", "--data", "synthetic", "--seed", "-1"], ["train", "--data", "synthetic", "--seed", "10000000000000"],
    ["train", "--data", "synthetic", "--text-dim", "-1"], ["train", "--data", "synthetic", "--text-dim", "10000000000000"],
    ["train", "--data", "synthetic", "--epochs", "0"], ["reproduce", "--seed", "-1"],
    ["reproduce", "--max-users", "10000000000000"], ["summarize", "--llm-concurrency", "0"],
])
def test_out_of_range_numbers_are_refused_by_the_parser(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Invalid value" in result.output


@pytest.mark.parametrize("args, message", [
    (["reproduce", "--llm-timeout", "nan"], "--llm-timeout"),
    (["reproduce", "--data", "synthetic:10000000000000"], "from 3 to"),
    (["reproduce", "--data", "/nonexistent/ml-1m"], "RecBole atomic"),
    (["partition", "--data", "synthetic:5", "--until", "nan", "--state", "/nonexistent/s.json"], "--until"),
    (["train", "--data", "synthetic:5", "--backbone", "sasrec"], "--backbone"),
    (["train", "--data", "synthetic:5", "--encoder", "/nonexistent/encoder"], "--encoder"),
])
def test_bad_values_are_one_input_error_before_any_work(args, message):
    result = runner.invoke(app, args)
    assert isinstance(result.exception, InputError) and message in str(result.exception)


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe garbage", b'{"user": "1", "pid": 0, "closed_at"', b"[1, 2]"])
def test_a_corrupted_interests_file_is_one_schema_error_naming_it(tmp_path, content):
    from tenfold.core.errors import SchemaError

    state, texts = tmp_path / "state.json", tmp_path / "texts.jsonl"
    _ok(["partition", "--data", "synthetic:3", "--state", str(state)])
    texts.write_bytes(content)
    result = runner.invoke(app, ["summarize", "--data", "synthetic:3", "--state", str(state), "--out", str(texts),
                                 "--cache", str(tmp_path / "c.sqlite")])
    if content:
        assert isinstance(result.exception, SchemaError) and str(texts) in str(result.exception)
    else:  # an empty file holds no summaries yet: every partition is summarised
        assert result.exit_code == 0 and texts.read_text().strip()


def test_smoke_reproduce_writes_every_claim_with_its_evidence(tmp_path):
    from tenfold.liber.experiment import reproduce

    result = reproduce("smoke", 0, tmp_path)
    m = result.metrics
    assert set(m["settings"]) == {"users", "users-norating", "time"} and result.seeds == [0, 1]
    assert m["rerun_new_llm_calls"] == 0 and m["cache_hits"] > 0
    assert m["test_train_overlap"]["users"] == {"shared_samples": 0, "shared_users": 0, "test_before_train": None}
    assert m["test_train_overlap"]["time"] == {"shared_samples": 0, "shared_users": None, "test_before_train": 0}
    claims = {c.id: c for c in result.claims}
    assert set(claims) == {"din_liber_beats_din_user_disjoint", "din_liber_beats_din_time_split",
                           "positive_control_fusion_lifts_auc", "liber_calls_below_kar_frontier",
                           "liber_prompt_volume_below_kar_frontier", "no_lazy_kar_period_dominates_liber",
                           "rerun_makes_no_new_calls"}
    for cid in ("din_liber_beats_din_user_disjoint", "positive_control_fusion_lifts_auc"):
        assert claims[cid].interval is not None and "union" in claims[cid].evidence
    assert claims["rerun_makes_no_new_calls"].holds
    assert {"calls_vs_staleness.png", "auc_difference.png"} <= set(result.artifacts)
    assert all((tmp_path / a).is_file() for a in result.artifacts)
    assert any("not an LLM" in n for n in result.notes) and any("synthetic" in n for n in result.notes)


def test_rerun_claim_negative_control_a_fresh_cache_makes_calls(tmp_path):
    from tenfold.core.results import Result
    from tenfold.liber.llm import RuleSummarizer
    from tenfold.liber.pipeline import interest_records, load_data, open_generator
    from tenfold.liber.samples import build_ctr_data

    ds, _ = load_data("synthetic:5")
    from tenfold.liber.partition import CountRule

    data = build_ctr_data(ds, CountRule(20))
    fresh = open_generator(RuleSummarizer(), tmp_path / "fresh.sqlite")  # nothing cached: the null
    interest_records(data, fresh)
    c = Result(method="liber", kind="reproduce", paper={}).claim("r", "rerun", fresh.calls, 1, better="lower", exact=True)
    assert fresh.calls == data.n_partitions and c.verdict == "fails"


def test_auc_claim_negative_control_a_second_din_relabelled_as_ours_does_not_hold():
    """The claim's own computation on two DIN runs with different seeds (no LIBER anywhere)."""
    from tenfold.liber.experiment import PROFILES
    from tenfold.liber.metrics import claim_interval
    from tenfold.liber.partition import parse_rule
    from tenfold.liber.pipeline import build_model, load_data
    from tenfold.liber.samples import build_ctr_data
    from tenfold.liber.training import TextTables, fit, predict

    cfg = replace(PROFILES["smoke"].cfg, epochs=2)
    ds, _ = load_data("synthetic:40")
    data = build_ctr_data(ds, parse_rule(cfg.rule), split="users", seed=0)
    runs = {}
    for s in range(4):
        model = build_model("base", "din", data, cfg, 0, s)
        fit(model, data, TextTables(), cfg.epochs, cfg.batch_size, cfg.lr, s)
        runs[s] = predict(model, data, TextTables(), "test")
    _, y, users = runs[0]
    interval, _, _ = claim_interval([runs[2][0], runs[3][0]], [runs[0][0], runs[1][0]], y, users)
    assert not interval.lo > 0


def test_cli_reproduce_with_a_served_model_labels_the_llm(tmp_path, make_server):
    srv = make_server("rules")
    out = _ok(["reproduce", "--profile", "smoke", "--seeds", "1", "--out", str(tmp_path), "--max-users", "16",
               "--llm", "openai", "--llm-url", srv.url, "--llm-model", "served-rules", "--llm-concurrency", "3"])
    result = json.loads((tmp_path / "liber" / "result.json").read_text())
    assert result["config"]["llm"] == "openai:served-rules" and "a real LLM" in result["config"]["llm_label"]
    assert result["metrics"]["llm_calls_first_run"] == srv.requests > 0
    assert result["metrics"]["llm_usage"]["prompt_tokens"] > 0 and "first16users" in result["config"]["data"]
    assert "rerun_makes_no_new_calls" in out


_CLI = "import sys; from tenfold.cli import main; sys.argv[0] = 'tenfold'; main()"


def _cache_rows(path: Path) -> int:
    try:
        db = sqlite3.connect(path, timeout=1)
        try:
            return db.execute("SELECT COUNT(*) FROM texts").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return 0


@pytest.mark.slow  # three CLI processes (~15 s idle); the cache-level kill test in test_liber_llm.py is the fast one
def test_summarize_killed_mid_run_resumes_and_ends_as_an_uninterrupted_run(tmp_path, make_server):
    srv = make_server("rules", delay=0.15)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    state = tmp_path / "state.json"
    _ok(["partition", "--data", "synthetic:6", "--state", str(state)])

    def cmd(cache, out):
        return [sys.executable, "-c", _CLI, "liber", "summarize", "--data", "synthetic:6", "--state", str(state),
                "--llm", "openai", "--llm-url", srv.url, "--llm-model", "m", "--llm-concurrency", "1",
                "--cache", str(cache), "--out", str(out)]

    whole = subprocess.run(cmd(tmp_path / "a.sqlite", tmp_path / "a.jsonl"), env=env, capture_output=True, text=True,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr
    total = _cache_rows(tmp_path / "a.sqlite")
    proc = subprocess.Popen(cmd(tmp_path / "b.sqlite", tmp_path / "b.jsonl"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and _cache_rows(tmp_path / "b.sqlite") < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    kept = _cache_rows(tmp_path / "b.sqlite")
    assert 5 <= kept < total and not (tmp_path / "b.jsonl").exists()  # killed mid-run, no half output
    resumed = subprocess.run(cmd(tmp_path / "b.sqlite", tmp_path / "b.jsonl"), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"new LLM calls {total - kept}, cache hits {kept}" in resumed.stdout  # nothing generated twice
    assert (tmp_path / "b.jsonl").read_text() == (tmp_path / "a.jsonl").read_text()


@pytest.mark.parametrize("server", ["nojson"], indirect=True)
def test_a_model_that_never_writes_the_fields_fails_with_one_clear_line(server, tmp_path):
    state = tmp_path / "state.json"
    _ok(["partition", "--data", "synthetic:3", "--state", str(state)])
    args = ["summarize", "--data", "synthetic:3", "--state", str(state), "--llm", "openai", "--llm-url", server.url,
            "--llm-model", "m", "--cache", str(tmp_path / "c.sqlite"), "--out", str(tmp_path / "o.jsonl")]
    result = runner.invoke(app, args)
    assert "no valid interest-fields JSON after 3 tries" in str(result.exception)
    assert "--llm-fields none" in str(result.exception)
    n = server.requests
    assert n == 3 * 3  # three users' first partitions, each asked three times
    _ok([*args, "--llm-fields", "none"])  # the text alone works with the same model
    assert [json.loads(x)["fields"] for x in (tmp_path / "o.jsonl").read_text().splitlines()][0] is None


@pytest.mark.slow  # three smoke reproductions in their own processes (~30 s idle)
def test_reproduce_killed_mid_training_reruns_to_the_same_result(tmp_path):
    """SIGKILL `tenfold liber reproduce` while it trains; the rerun reuses the cached summaries and ends
    with the result of an uninterrupted run (training restarts cleanly: each model trains in seconds)."""
    def cmd(out):
        return [sys.executable, "-c", _CLI, "liber", "reproduce", "--profile", "smoke", "--out", str(out)]

    def env(home):
        return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "TENFOLD_HOME": str(home),
                "OMP_NUM_THREADS": "1", "TENFOLD_QUIET": "0"}  # its status lines say when training has started

    whole = subprocess.run(cmd(tmp_path / "a"), env=env(tmp_path / "home-a"), capture_output=True, text=True,
                           timeout=600)
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen(cmd(tmp_path / "b"), env=env(tmp_path / "home-b"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # the summaries are cached once training has started
        if "[liber] users din+liber seed" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (tmp_path / "b" / "liber" / "result.json").exists()  # killed before the end: no half result
    again = subprocess.run(cmd(tmp_path / "b"), env=env(tmp_path / "home-b"), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    a, b = (json.loads((tmp_path / x / "liber" / "result.json").read_text()) for x in ("a", "b"))
    assert [c for c in a["claims"]] == [c for c in b["claims"]]
    assert a["metrics"]["settings"] == b["metrics"]["settings"]
    assert b["metrics"]["llm_calls_first_run"] == 0 < a["metrics"]["llm_calls_first_run"]  # nothing generated twice
