"""UIL text generation: the rule stand-in, the SQLite cache (also under a kill), the HTTP and local-LM backends."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tenfold.core.errors import BackendError, CacheError, InputError
from tenfold.liber.interests import TEMPLATES, ItemCatalog, learn_interests, shift_prompt, summary_prompt
from tenfold.liber.llm import (
    RULES_LABEL,
    CachedGenerator,
    GenerationCache,
    OpenAIGenerator,
    RuleSummarizer,
    make_generator,
)
from tenfold.liber.partition import Behavior, CountRule, partition_history

CATALOG = ItemCatalog({"1": "Alpha", "2": "Beta", "3": "Gamma"}, {"1": "1995", "2": "1981", "3": "x"},
                      {"1": ("Drama",), "2": ("Horror", "Comedy"), "3": ("Drama",)})


def prompt(previous, items_ratings):
    behaviors = [Behavior(i, float(k), r, CATALOG.genres[i]) for k, (i, r) in enumerate(items_ratings)]
    return summary_prompt(TEMPLATES["movie"], "The user is a 30-year-old male writer.", previous, behaviors, CATALOG)


def test_rule_summary_is_labelled_and_matches_hand_worked_statistics():
    text = RuleSummarizer().respond(prompt(None, [("1", 5.0), ("2", 2.0), ("3", 4.0)]))
    assert text.startswith(RULES_LABEL)
    # Drama: ((5-3)/2 + (4-3)/2) / 2 = 0.75; Horror and Comedy: (2-3)/2 = -0.5
    assert "Genre scores: Drama +0.75; Comedy -0.50; Horror -0.50" in text
    assert "mean rating 3.7" in text and "67% liked" in text and "decades 1980s, 1990s" in text
    assert "Likes: strongly likes Drama" in text and "strongly dislikes Horror" in text


def test_cascade_carries_previous_scores_and_reports_the_shift():
    gen = RuleSummarizer(carry=0.5)
    first = gen.respond(prompt(None, [("1", 5.0)]))  # Drama +1.00
    second = gen.respond(prompt(first, [("3", 2.0), ("2", 5.0)]))  # Drama now -0.5 -> 0.5*1 + 0.5*(-0.5) = 0.25
    assert "Drama +0.25" in second and "Horror +1.00" in second
    assert "Change: newly likes Comedy, Horror" in second
    shift = gen.respond(shift_prompt(TEMPLATES["movie"], first, second))
    assert shift.startswith(RULES_LABEL) and "newly likes Comedy, Horror" in shift and "Stable interests: Drama" in shift
    independent = gen.respond(prompt(None, [("3", 2.0), ("2", 5.0)]))
    assert "Drama -0.50" in independent  # without the cascade nothing is carried


def test_rerun_generates_nothing_and_counts_hits(tmp_path):
    parts, _ = partition_history([Behavior(str(1 + k % 3), float(k), 1.0 + k % 5, CATALOG.genres[str(1 + k % 3)])
                                  for k in range(12)], CountRule(3))
    first = CachedGenerator(RuleSummarizer(), GenerationCache(tmp_path / "c.sqlite", "rules/v1"))
    a = learn_interests({"u": parts}, first, CATALOG)
    assert first.calls == 4 + 3 and first.hits == 0  # 4 summaries + 3 shifts
    again = CachedGenerator(RuleSummarizer(), GenerationCache(tmp_path / "c.sqlite", "rules/v1"))
    b = learn_interests({"u": parts}, again, CATALOG)
    assert again.calls == 0 and again.hits == 7 and a == b
    incremental = learn_interests({"u": parts}, again, CATALOG, known={"u": a["u"][:2]})
    assert incremental == a and again.calls == 0


def test_cache_from_another_model_or_garbage_is_refused(tmp_path):
    GenerationCache(tmp_path / "c.sqlite", "rules/v1").close()
    with pytest.raises(CacheError, match="holds texts of model 'rules/v1'"):
        GenerationCache(tmp_path / "c.sqlite", "openai:qwen")
    (tmp_path / "bad.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(CacheError, match="not a usable SQLite cache"):
        GenerationCache(tmp_path / "bad.sqlite", "rules/v1")


_WORKER = """
import sys, time
from tenfold.liber.llm import CachedGenerator, GenerationCache, RuleSummarizer
class Slow(RuleSummarizer):
    def generate_each(self, prompts):
        for i, p in enumerate(prompts):
            time.sleep(float(sys.argv[2]))
            yield i, "answer to " + p
gen = CachedGenerator(Slow(), GenerationCache(sys.argv[1], "rules/v1"), flush_every=3)
out = gen.generate([f"prompt {k}" for k in range(40)])
print("calls", gen.calls, flush=True)
"""


def _rows(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return dict(db.execute("SELECT prompt, text FROM texts").fetchall())
    finally:
        db.close()


def test_cache_survives_a_kill_mid_run_and_restart_generates_only_the_rest(tmp_path):
    path = tmp_path / "cache.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(path), "0.05"], env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if path.exists():
            try:
                if len(_rows(path)) >= 6:
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    saved = _rows(path)
    assert 6 <= len(saved) < 40, "the kill should land mid-run"
    assert all(text == "answer to " + p for p, text in saved.items())  # nothing corrupted
    done = subprocess.run([sys.executable, "-c", _WORKER, str(path), "0"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"calls {40 - len(saved)}"  # nothing generated twice
    final = _rows(path)
    assert len(final) == 40 and all(final[p] == t for p, t in saved.items())


class _Server:
    """A tiny OpenAI-compatible chat-completions server on 127.0.0.1; serves at most 200 requests."""

    def __init__(self, mode: str):
        self.mode, self.requests, self.bodies = mode, 0, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                outer.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                if outer.mode == "flaky" and outer.requests == 1:
                    return self._send(503, b"{}")
                if outer.mode == "slow":
                    time.sleep(1.0)
                if outer.mode == "malformed":
                    return self._send(200, b'{"choices": []}')
                if outer.mode == "notfound":
                    return self._send(404, b'{"error": "no such model"}')
                text = "summary of " + body["messages"][-1]["content"][-20:]
                self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode())

            def _send(self, code, data):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.requests < 200 and not getattr(self, "stopped", False):
            self.httpd.handle_request()

    def stop(self):
        self.stopped = True
        self.httpd.server_close()


@pytest.fixture
def server(request):
    srv = _Server(request.param)
    yield srv
    srv.stop()


@pytest.mark.parametrize("server", ["ok"], indirect=True)
def test_openai_backend_generates_passes_params_and_caches(server, tmp_path):
    gen = OpenAIGenerator(server.url, "test-model", temperature=0.3, seed=7, concurrency=3, backoff=0.01)
    cached = CachedGenerator(gen, GenerationCache(tmp_path / "c.sqlite", gen.model_id))
    prompts = [f"prompt number {k}" for k in range(7)]
    out = cached.generate(prompts)
    assert out == ["summary of " + p[-20:] for p in prompts]
    assert {b["temperature"] for b in server.bodies} == {0.3} and {b["seed"] for b in server.bodies} == {7}
    assert all(b["model"] == "test-model" for b in server.bodies)
    n = server.requests
    assert cached.generate(prompts) == out and server.requests == n  # second pass: cache only


@pytest.mark.parametrize("server", ["flaky"], indirect=True)
def test_openai_backend_retries_a_5xx(server):
    gen = OpenAIGenerator(server.url, "m", backoff=0.01, concurrency=1)
    assert gen.generate(["hello"]) == ["summary of hello"] and server.requests == 2


@pytest.mark.parametrize("server", ["malformed", "notfound", "slow"], indirect=True)
def test_openai_backend_bad_replies_raise_backend_error(server):
    gen = OpenAIGenerator(server.url, "m", retries=1, backoff=0.01, timeout=0.3, concurrency=1)
    with pytest.raises(BackendError):
        gen.generate(["hello"])


def test_dead_endpoint_is_a_clear_error_and_keeps_earlier_answers(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", "m", retries=1, backoff=0.01, timeout=1)
    cache = GenerationCache(tmp_path / "c.sqlite", gen.model_id)
    cache.put_many([("kept", "an earlier answer")], gen.params)
    with pytest.raises(BackendError, match="is the server running"):
        CachedGenerator(gen, cache).generate(["kept", "new"])
    assert cache.get("kept", gen.params) == "an earlier answer"
    with pytest.raises(InputError):
        make_generator("openai")
    with pytest.raises(InputError):
        make_generator("gpt5")


def test_transformers_backend_runs_a_local_model_and_caches(tiny_lm_dir, tmp_path):
    from tenfold.liber.llm import TransformersGenerator

    gen = TransformersGenerator(tiny_lm_dir, max_new_tokens=8)
    cached = CachedGenerator(gen, GenerationCache(tmp_path / "c.sqlite", gen.model_id))
    texts = cached.generate([prompt(None, [("1", 5.0)]), "def add(a, b):"])
    assert all(isinstance(t, str) for t in texts) and cached.calls == 2
    again = CachedGenerator(TransformersGenerator(tiny_lm_dir, max_new_tokens=8),
                            GenerationCache(tmp_path / "c.sqlite", gen.model_id))
    assert again.generate([prompt(None, [("1", 5.0)]), "def add(a, b):"]) == texts and again.calls == 0
