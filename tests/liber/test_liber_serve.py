"""LIBER against a real OpenAI-compatible server: `transformers serve` with a zoo LM on 127.0.0.1.

The server is started on a free loopback port, waited for on /health and stopped by its own process
id. Through the `tenfold` CLI (subprocesses, as a user runs it): summarize and train on a few users;
every answer in the SQLite cache; a rerun makes no call; concurrency 3; the server killed mid-run and
restarted (no cached answer lost, the run resumes); a model that never writes the JSON fields, and a
timeout, each give the documented retries and one error line; reproduce with the served model and
with the local transformers backend, labelled as such.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None,
                       reason="needs transformers[serving] (pip install -e '.[serving]')"),
]

SRC = str(Path(__file__).resolve().parents[2] / "src")
CLI = "import sys; from tenfold.cli import main; sys.argv[0] = 'tenfold'; main()"


class Served:
    """`transformers serve MODEL` on 127.0.0.1:port, as its own process."""

    def __init__(self, model: Path):
        self.model = str(model)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 300.0) -> None:
        exe = Path(sys.executable).with_name("transformers")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([str(exe), "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port),
                                      "--device", "cpu", "--log-level", "warning"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("transformers serve did not become healthy in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)  # its own pid, nothing else
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tiny_lm_dir):
    srv = Served(tiny_lm_dir)
    srv.start()
    yield srv
    srv.kill()


def tenfold(*args, timeout=600, wait=True):
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", CLI, *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def rows(cache: Path) -> dict[str, str]:
    db = sqlite3.connect(cache, timeout=5)
    try:
        return dict(db.execute("SELECT prompt, text FROM texts").fetchall())
    except sqlite3.OperationalError:  # the writer has not created its table yet
        return {}
    finally:
        db.close()


def llm(srv: Served, *extra) -> list:
    return ["--llm", "openai", "--llm-url", srv.url, "--llm-model", srv.model, "--llm-max-tokens", "16", *extra]


DATA = ["--data", "synthetic:4"]


def test_summarize_train_cache_rerun_and_concurrency_against_transformers_serve(served, tmp_path):
    state, cache, out = tmp_path / "state.json", tmp_path / "c.sqlite", tmp_path / "o.jsonl"
    assert tenfold("liber", "partition", *DATA, "--state", state).returncode == 0
    n = sum(len(s["partitions"]) for s in json.loads(state.read_text())["users"].values())
    first = tenfold("liber", "summarize", *DATA, "--state", state, "--cache", cache, "--out", out,
                    *llm(served, "--llm-fields", "none", "--llm-concurrency", "3"))
    assert first.returncode == 0, first.stderr
    assert f"new LLM calls {n}, cache hits 0" in first.stdout
    assert "tokens in" in first.stderr  # the token counts the server reported
    saved = rows(cache)
    assert len(saved) == n and all(isinstance(t, str) for t in saved.values())  # every answer in the cache
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(records) == n and all(r["fields"] is None for r in records)
    again = tenfold("liber", "summarize", *DATA, "--state", state, "--cache", cache, "--out", tmp_path / "o2.jsonl",
                    *llm(served, "--llm-fields", "none"))
    assert again.returncode == 0 and f"new LLM calls 0, cache hits {n}" in again.stdout
    assert (tmp_path / "o2.jsonl").read_text() == out.read_text()  # concurrency 3 and 4 give the same answers
    trained = tenfold("liber", "train", *DATA, "--split", "time", "--epochs", "1", "--text-dim", "8", "--cache", cache,
                      "--out", tmp_path / "model", *llm(served, "--llm-fields", "none"))
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout.strip().splitlines()[-1])
    assert report["llm_calls"] == 0 and report["cache_hits"] == n and 0 <= report["test"]["auc"] <= 1


def test_server_killed_mid_run_and_restarted_loses_nothing_and_the_run_resumes(served, tmp_path):
    state, cache, out = tmp_path / "state.json", tmp_path / "c.sqlite", tmp_path / "o.jsonl"
    assert tenfold("liber", "partition", "--data", "synthetic:8", "--state", state).returncode == 0
    n = sum(len(s["partitions"]) for s in json.loads(state.read_text())["users"].values())
    proc = tenfold("liber", "summarize", "--data", "synthetic:8", "--state", state, "--cache", cache, "--out", out,
                   *llm(served, "--llm-fields", "none", "--llm-concurrency", "2", "--llm-retries", "7"), wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and (not cache.exists() or len(rows(cache)) < 3):
        time.sleep(0.1)
    served.kill()
    before = rows(cache)
    assert 3 <= len(before) < n, "the server should die mid-run"
    served.start()  # same port; the client is waiting in its retries (1, 2, 4, ... s)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    after = rows(cache)
    assert len(after) == n and all(after[p] == t for p, t in before.items())  # no cached answer lost or changed
    assert "cache hits 0" in stdout and len(out.read_text().splitlines()) == n


def test_no_fields_and_timeouts_give_the_documented_retries_then_one_error_line(served, tmp_path):
    state = tmp_path / "state.json"
    assert tenfold("liber", "partition", *DATA, "--state", state).returncode == 0
    users = len(json.loads(state.read_text())["users"])
    nojson = tenfold("liber", "summarize", *DATA, "--state", state, "--cache", tmp_path / "a.sqlite",
                     "--out", tmp_path / "a.jsonl", *llm(served))  # a 5M-parameter LM never writes the JSON
    assert nojson.returncode == 2
    errors = [line for line in nojson.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no valid interest-fields JSON after 3 tries" in errors[0]
    assert "Traceback" not in nojson.stderr
    assert len(rows(tmp_path / "a.sqlite")) == 3 * users  # partition 0 of each user, asked three times, all cached
    slow = tenfold("liber", "summarize", *DATA, "--state", state, "--cache", tmp_path / "b.sqlite",
                   "--out", tmp_path / "b.jsonl", *llm(served, "--llm-fields", "none", "--llm-timeout", "0.001",
                                                       "--llm-retries", "1"))
    assert slow.returncode == 2
    errors = [line for line in slow.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed after 2 tries" in errors[0] and "Traceback" not in slow.stderr


@pytest.mark.parametrize("backend", ["openai", "transformers"])
def test_reproduce_with_a_real_models_summaries_is_labelled(served, tiny_lm_dir, tmp_path, backend):
    which = llm(served, "--llm-concurrency", "3") if backend == "openai" else [
        "--llm", "transformers", "--llm-model", tiny_lm_dir, "--llm-max-tokens", "16"]
    done = tenfold("liber", "reproduce", "--profile", "smoke", "--max-users", "20", "--out", tmp_path, *which,
                   "--llm-fields", "none")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "liber" / "result.json").read_text())
    assert result["config"]["llm"].startswith(f"{backend}:") and "a real LLM" in result["config"]["llm_label"]
    assert result["metrics"]["llm_calls_first_run"] > 0 and result["metrics"]["rerun_new_llm_calls"] == 0
    assert result["metrics"]["llm_usage"]["completion_tokens"] > 0
