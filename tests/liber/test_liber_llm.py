"""UIL text generation: the rule stand-in, the structured fields (validation, retries), the SQLite cache
(also under a kill), the HTTP and local-LM backends."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tenfold.core.errors import BackendError, CacheError, InputError
from tenfold.liber.interests import (
    TEMPLATES,
    InterestFields,
    ItemCatalog,
    MalformedFields,
    ask,
    learn_interests,
    split_answer,
    summary_prompt,
)
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


def prompt(previous, items_ratings, fields=True):
    behaviors = [Behavior(i, float(k), r, CATALOG.genres[i]) for k, (i, r) in enumerate(items_ratings)]
    return summary_prompt(TEMPLATES["movie"], "The user is a 30-year-old male writer.", previous, behaviors, CATALOG,
                          fields=fields)


def test_rule_summary_is_labelled_and_matches_hand_worked_statistics():
    text = RuleSummarizer().respond(prompt(None, [("1", 5.0), ("2", 2.0), ("3", 4.0)]))
    assert text.startswith(RULES_LABEL)
    # Drama: ((5-3)/2 + (4-3)/2) / 2 = 0.75; Horror and Comedy: (2-3)/2 = -0.5
    assert "Genre scores: Drama +0.75; Comedy -0.50; Horror -0.50" in text
    assert "mean rating 3.7" in text and "67% liked" in text and "decades 1980s, 1990s" in text
    assert "Likes: strongly likes Drama" in text and "strongly dislikes Horror" in text
    prose, fields = split_answer(text)
    assert fields.genre_scores == {"Drama": 0.75, "Comedy": -0.5, "Horror": -0.5} and fields.shift == 0
    assert fields.mean_rating == pytest.approx(11 / 3, abs=1e-4) and fields.liked_share == pytest.approx(2 / 3, abs=1e-4)
    assert "{" not in prose and prose.startswith(RULES_LABEL)
    assert "{" not in RuleSummarizer().respond(prompt(None, [("1", 5.0)], fields=False))  # no JSON unless asked


def test_cascade_carries_previous_scores_and_reports_the_shift():
    gen = RuleSummarizer(carry=0.5)
    first, _ = split_answer(gen.respond(prompt(None, [("1", 5.0)])))  # Drama +1.00
    second = gen.respond(prompt(first, [("3", 2.0), ("2", 5.0)]))  # Drama now -0.5 -> 0.5*1 + 0.5*(-0.5) = 0.25
    assert "Drama +0.25" in second and "Horror +1.00" in second
    assert "Shift: newly likes Comedy, Horror" in second
    _, fields = split_answer(second)
    # shift = (1 - cos(prev, current)) / 2 over {Drama, Comedy, Horror}: prev (1, 0, 0), current (-0.5, 1, 1)
    assert abs(fields.shift - 0.5 * (1 + 0.5 / 1.5)) < 1e-4
    independent = gen.respond(prompt(None, [("3", 2.0), ("2", 5.0)]))
    assert "Drama -0.50" in independent and "Shift: none (first period)" in independent


def test_fields_are_validated_with_a_reason():
    good = {"genre_scores": {"Drama": 0.25}, "mean_rating": 3.5, "liked_share": 0.5, "shift": 0.1}
    prose, fields = split_answer("The user likes dramas.\n```json\n" + json.dumps(good) + "\n```")
    assert prose == "The user likes dramas." and fields.genre_scores == {"Drama": 0.25}
    for bad, why in (({**good, "shift": 2}, "shift = 2 is outside"), ({**good, "mean_rating": "high"}, "not a number"),
                     ({k: v for k, v in good.items() if k != "liked_share"}, "lacks liked_share"),
                     ({**good, "genre_scores": [1]}, "not an object")):
        with pytest.raises(MalformedFields, match=why):
            split_answer("text " + json.dumps(bad))
    with pytest.raises(MalformedFields, match="no JSON object"):
        split_answer("The user likes dramas.")


def test_plus_and_minus_preferences_give_different_field_vectors():
    up = InterestFields({"Drama": 0.25}, None, 0.0, 0.0).vector(["Comedy", "Drama"])
    down = InterestFields({"drama": -0.25}, None, 0.0, 0.0).vector(["Comedy", "Drama"])
    assert up[1] == 0.25 and down[1] == -0.25 and up[0] == down[0] == 0.0


class _Scripted(RuleSummarizer):
    """Answers without fields until a prompt carries `[Retry k]` with k >= `good_from`."""

    def __init__(self, good_from):
        super().__init__()
        self.good_from, self.seen = good_from, []

    def respond(self, p):
        self.seen.append(p)
        k = max([int(x.split("]")[0]) for x in p.split("[Retry ")[1:]] or [0])
        return super().respond(p) if k >= self.good_from else "I think the user likes films."


def test_malformed_fields_are_retried_then_a_clear_error(tmp_path):
    p = prompt(None, [("1", 5.0)])
    gen = CachedGenerator(_Scripted(good_from=2), GenerationCache(tmp_path / "c.sqlite", "rules/v2"))
    [(text, fields)] = ask(gen, [p], ["user u partition 0"], retries=2)
    assert fields.genre_scores == {"Drama": 1.0} and gen.calls == 3  # the answer, then retries 1 and 2
    again = CachedGenerator(_Scripted(good_from=2), GenerationCache(tmp_path / "c.sqlite", "rules/v2"))
    assert ask(again, [p], ["user u partition 0"], retries=2)[0][1] == fields and again.calls == 0  # all cached
    never = CachedGenerator(_Scripted(good_from=99), GenerationCache(tmp_path / "d.sqlite", "rules/v2"))
    with pytest.raises(BackendError, match=r"user u partition 0: no valid interest-fields JSON after 3 tries \(last "
                                           r"problem: no JSON object.*--llm-fields none"):
        ask(never, [p], ["user u partition 0"], retries=2)
    assert never.calls == 3 and len(never.cache) == 3  # every answer, usable or not, is cached
    assert ask(never, [p], ["x"], fields=False)[0] == ("I think the user likes films.", None)


def test_rerun_generates_nothing_and_counts_hits(tmp_path):
    parts, _ = partition_history([Behavior(str(1 + k % 3), float(k), 1.0 + k % 5, CATALOG.genres[str(1 + k % 3)])
                                  for k in range(12)], CountRule(3))
    first = CachedGenerator(RuleSummarizer(), GenerationCache(tmp_path / "c.sqlite", "rules/v2"))
    a = learn_interests({"u": parts}, first, CATALOG)
    assert first.calls == 4 and first.hits == 0  # one call per partition (summary, shift and fields together)
    assert all(r.fields is not None for r in a["u"])
    again = CachedGenerator(RuleSummarizer(), GenerationCache(tmp_path / "c.sqlite", "rules/v2"))
    b = learn_interests({"u": parts}, again, CATALOG)
    assert again.calls == 0 and again.hits == 4 and a == b
    incremental = learn_interests({"u": parts}, again, CATALOG, known={"u": a["u"][:2]})
    assert incremental == a and again.calls == 0


def test_cache_from_another_model_or_garbage_is_refused(tmp_path):
    GenerationCache(tmp_path / "c.sqlite", "rules/v2").close()
    with pytest.raises(CacheError, match="holds texts of model 'rules/v2'"):
        GenerationCache(tmp_path / "c.sqlite", "openai:qwen")
    (tmp_path / "bad.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(CacheError, match="not a usable SQLite cache"):
        GenerationCache(tmp_path / "bad.sqlite", "rules/v2")


_WORKER = """
import sys, time
from tenfold.liber.llm import CachedGenerator, GenerationCache, RuleSummarizer
class Slow(RuleSummarizer):
    def generate_each(self, prompts):
        for i, p in enumerate(prompts):
            time.sleep(float(sys.argv[2]))
            yield i, "answer to " + p
gen = CachedGenerator(Slow(), GenerationCache(sys.argv[1], "rules/v2"), flush_every=3)
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


@pytest.mark.parametrize("server", ["ok"], indirect=True)
def test_openai_backend_generates_passes_params_counts_tokens_and_caches(server, tmp_path):
    gen = OpenAIGenerator(server.url, "test-model", temperature=0.3, seed=7, concurrency=3, backoff=0.01)
    cached = CachedGenerator(gen, GenerationCache(tmp_path / "c.sqlite", gen.model_id))
    prompts = [f"prompt number {k}" for k in range(7)]
    out = cached.generate(prompts)
    assert out == ["summary of " + p[-20:] for p in prompts]
    assert {b["temperature"] for b in server.bodies} == {0.3} and {b["seed"] for b in server.bodies} == {7}
    assert all(b["model"] == "test-model" for b in server.bodies)
    n = server.requests
    assert cached.generate(prompts) == out and server.requests == n  # second pass: cache only
    assert cached.usage["requests"] == 7 and cached.usage["prompt_tokens"] == sum(len(p.split()) for p in prompts)


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
