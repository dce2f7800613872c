"""Text generation for UIL: one `TextGenerator` interface, three backends, one SQLite answer cache.

Backends: `RuleSummarizer` ("rules", the offline default: a rule-based stand-in, not an LLM),
`OpenAIGenerator` (any OpenAI-compatible endpoint: vLLM, Ollama, llama.cpp server) and
`TransformersGenerator` (a local causal LM by path or zoo name). `CachedGenerator` wraps any of them so
that a text is generated once per (model id, prompt hash, parameters) and never again.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tenfold.core.errors import BackendError, CacheError, InputError

RULES_LABEL = "[rule-based stand-in, not an LLM]"


class TextGenerator:
    """`generate_each(prompts)` yields (index, text) as answers arrive; `model_id`/`params` key the cache."""

    model_id: str = ""
    params: dict = {}
    # tokens reported by the backend for the texts it generated (None where it reports none)
    usage: dict | None = None

    def generate_each(self, prompts: list[str]) -> Iterator[tuple[int, str]]:
        raise NotImplementedError

    def generate(self, prompts: list[str]) -> list[str]:
        out = [""] * len(prompts)
        for i, text in self.generate_each(prompts):
            out[i] = text
        return out


# ---------------------------------------------------------------- rules: a deterministic stand-in

_ITEM_LINE = re.compile(r"^- (?P<title>.*?)(?: \((?P<year>\d{4})\))? \| genres: (?P<genres>.*?) \| rating: (?P<rating>[\d.]+|unknown)")
_SCORES_LINE = re.compile(r"^Genre scores: (.*)$", re.M)
_LIKES_LINE = re.compile(r"^Likes: (.*)$", re.M)
_HEADERS = (r"^\[(?:Task|User profile|Previous interest summary|Question|Answer format|Retry \d+|"
            r"\w+ \w+ history)\]")


def _section(prompt: str, name: str) -> str:
    match = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?={_HEADERS}|\Z)", prompt, re.M | re.S)
    return match.group(1).strip() if match else ""


def _scores(summary: str) -> dict[str, float]:
    match = _SCORES_LINE.search(summary)
    if not match or match.group(1) == "none":
        return {}
    out = {}
    for part in match.group(1).split("; "):
        name, _, value = part.rpartition(" ")
        out[name] = float(value)
    return out


def _liked(summary: str) -> set[str]:
    match = _LIKES_LINE.search(summary)
    if not match:
        return set()
    return {m.group(1) for m in re.finditer(r"likes ([^;]+)", match.group(1))}


def _band(score: float) -> str | None:
    if score >= 0.5:
        return "strongly likes"
    if score >= 0.15:
        return "likes"
    if score <= -0.5:
        return "strongly dislikes"
    if score <= -0.15:
        return "dislikes"
    return None


def _shift(before: dict[str, float], now: dict[str, float]) -> float:
    """(1 - cos) / 2 of two genre-score vectors (0 when there is no previous period), in [0, 1]."""
    if not before:
        return 0.0
    keys = sorted(set(before) | set(now))
    a = [before.get(k, 0.0) for k in keys]
    b = [now.get(k, 0.0) for k in keys]
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    if na == 0 or nb == 0:
        return 0.5
    return min(1.0, max(0.0, 0.5 * (1.0 - sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb))))


class RuleSummarizer(TextGenerator):
    """Summaries from partition statistics parsed out of the prompt (genres liked/disliked, rating
    mean, decades, change against the previous summary), plus the JSON fields when the prompt asks.
    Not an LLM: every text says so.

    The cascade is real: a partition's genre scores are `carry * previous + (1 - carry) * current`.
    """

    def __init__(self, carry: float = 0.5):
        if not 0 <= carry < 1:
            raise InputError(f"carry must be in [0, 1), got {carry}")
        self.carry = carry
        self.model_id = "rules/v2"
        self.params = {"carry": carry}

    def generate_each(self, prompts):
        for i, prompt in enumerate(prompts):
            yield i, self.respond(prompt)

    def respond(self, prompt: str) -> str:
        previous = _section(prompt, "Previous interest summary")
        lines = [m for m in (_ITEM_LINE.match(x) for x in prompt.splitlines()) if m]
        if not lines:
            return f"{RULES_LABEL}\nNo behaviors in this period."
        ratings = [float(m["rating"]) for m in lines if m["rating"] != "unknown"]
        per_genre: dict[str, list[float]] = {}
        for m in lines:
            value = (float(m["rating"]) - 3.0) / 2.0 if m["rating"] != "unknown" else 0.5
            for g in m["genres"].split(", "):
                per_genre.setdefault(g, []).append(value)
        current = {g: sum(v) / len(v) for g, v in per_genre.items()}
        prev = _scores(previous)
        merged = dict(prev)
        for g, s in current.items():
            merged[g] = self.carry * prev[g] + (1 - self.carry) * s if g in prev else s
        ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
        decades = sorted({f"{int(m['year']) // 10 * 10}s" for m in lines if m["year"]})
        likes = [f"{_band(s)} {g}" for g, s in ranked if _band(s) and s > 0]
        dislikes = [f"{_band(s)} {g}" for g, s in reversed(ranked) if _band(s) and s < 0]
        mean = sum(ratings) / len(ratings) if ratings else None
        liked = sum(r >= 4 for r in ratings) / len(ratings) if ratings else 0.0
        shift = _shift(prev, current)
        out = [RULES_LABEL,
               f"Period: {len(lines)} items, " + (f"mean rating {mean:.1f}, {100 * liked:.0f}% liked" if ratings
                                                  else "no ratings") + f", decades {', '.join(decades) or 'unknown'}.",
               "Genre scores: " + ("; ".join(f"{g} {s:+.2f}" for g, s in ranked) or "none"),
               "Likes: " + ("; ".join(likes) or "nothing clearly"),
               "Dislikes: " + ("; ".join(dislikes) or "nothing clearly")]
        if prev:  # change against the previous period: genres seen now that crossed the "likes" line
            before = _liked(previous)
            now = (before - {g for g, s in current.items() if s < 0.15}) | {g for g, s in current.items() if s >= 0.15}
            out.append(f"Shift: {self._change(before, now)} (shift {shift:.2f})")
        else:
            out.append("Shift: none (first period)")
        if "[Answer format]" in prompt:
            out.append(json.dumps({"genre_scores": {g: round(s, 4) for g, s in ranked},
                                   "mean_rating": None if mean is None else round(mean, 4),
                                   "liked_share": round(liked, 4), "shift": round(shift, 4)}))
        return "\n".join(out)

    @staticmethod
    def _change(before: set[str], after: set[str]) -> str:
        new, gone = sorted(after - before), sorted(before - after)
        if not new and not gone:
            return "no change in liked genres"
        parts = ([f"newly likes {', '.join(new)}"] if new else []) + ([f"no longer likes {', '.join(gone)}"] if gone else [])
        return "; ".join(parts)


# ---------------------------------------------------------------- OpenAI-compatible HTTP


class OpenAIGenerator(TextGenerator):
    """Chat completions from an OpenAI-compatible server at `base_url` (e.g. http://localhost:8000/v1).

    Timeouts, retries with exponential backoff on network errors, 429 and 5xx, a concurrency limit,
    and temperature/seed passthrough. A reply without `choices[0].message.content` text is malformed:
    it is retried like a network error, then reported as a BackendError. The documented schedule:
    `retries` = 3 more tries after the first, waiting `backoff` * 1, 2, 4 s between them. `usage`
    adds up the token counts the server reports.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, temperature: float = 0.5,
                 max_tokens: int = 512, seed: int | None = 0, timeout: float = 60.0, retries: int = 3,
                 backoff: float = 1.0, concurrency: int = 4, system: str = "You are a helpful assistant."):
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"--llm-url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise InputError("the openai backend needs --llm-model (the model name the server serves)")
        if concurrency < 1 or retries < 0 or timeout <= 0:
            raise InputError(f"need concurrency >= 1, retries >= 0, timeout > 0; got {concurrency}, {retries}, {timeout}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key or os.environ.get("OPENAI_API_KEY", "none")
        self.timeout, self.retries, self.backoff, self.concurrency = timeout, retries, backoff, concurrency
        self.system = system
        self.model_id = f"openai:{model}"
        self.params = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed, "system": system}
        self.usage = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}
        self._lock = threading.Lock()

    def _once(self, prompt: str) -> str:
        body = {"model": self.model, "messages": [{"role": "system", "content": self.system},
                                                  {"role": "user", "content": prompt}],
                "temperature": self.params["temperature"], "max_tokens": self.params["max_tokens"]}
        if self.params["seed"] is not None:
            body["seed"] = self.params["seed"]
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.api_key}"})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            raw = response.read()
        try:
            reply = json.loads(raw)
            text = reply["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise _Malformed(f"malformed reply from {self.url}: {raw[:200]!r}") from err
        if not isinstance(text, str):  # an empty answer is an answer (a poor one); a missing one is not
            raise _Malformed(f"non-text content in the reply from {self.url}: {raw[:200]!r}")
        usage = reply.get("usage") if isinstance(reply, dict) else None
        with self._lock:
            self.usage["requests"] += 1
            self.usage["seconds"] += time.perf_counter() - start
            if isinstance(usage, dict):
                self.usage["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
                self.usage["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        return text

    def _with_retries(self, prompt: str) -> str:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return self._once(prompt)
            except urllib.error.HTTPError as err:
                if err.code != 429 and err.code < 500:
                    raise BackendError(f"{self.url} refused the request (HTTP {err.code}): check --llm-model "
                                       "and the API key") from err
                last = err
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError, _Malformed) as err:
                last = err
            if attempt < self.retries:
                time.sleep(self.backoff * 2 ** attempt)
        if isinstance(last, _Malformed):
            raise BackendError(f"{last} (after {self.retries + 1} tries): check the server is a chat-completions endpoint")
        raise BackendError(f"LLM endpoint {self.url} failed after {self.retries + 1} tries ({last}): is the server "
                           "running and reachable? Raise --timeout for slow models; answers so far are cached")

    def generate_each(self, prompts):
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            futures = {pool.submit(self._with_retries, p): i for i, p in enumerate(prompts)}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class _Malformed(Exception):
    pass


# ---------------------------------------------------------------- local transformers


class TransformersGenerator(TextGenerator):
    """A local causal LM from a folder or a `tenfold zoo` name; chat template when the tokenizer has one."""

    def __init__(self, model: str | os.PathLike, max_new_tokens: int = 64, temperature: float = 0.0, seed: int = 0,
                 device: str | None = None):
        from tenfold.core.runtime import pick_device

        folder = Path(model)
        if not folder.is_dir():
            from tenfold.zoo.registry import get_model

            folder = get_model(str(model)).ensure()
        if not (folder / "config.json").is_file():
            raise InputError(f"{folder} is not a transformers model folder (no config.json)")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.device = pick_device(device)
        self.model = AutoModelForCausalLM.from_pretrained(folder).to(self.device).eval()
        digest = hashlib.sha256((folder / "config.json").read_bytes())
        for weights in sorted(folder.glob("*.safetensors")):
            digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
        self.model_id = f"transformers:{folder.name}:{digest.hexdigest()[:12]}"
        self.params = {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
        self.usage = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}

    def _ids(self, prompt: str):
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                      return_dict=True, return_tensors="pt")["input_ids"]
        return self.tokenizer(prompt, return_tensors="pt").input_ids

    def generate_each(self, prompts):
        import torch

        limit = getattr(self.model.config, "max_position_embeddings", 2048) - self.params["max_new_tokens"]
        for i, prompt in enumerate(prompts):
            ids = self._ids(prompt)[:, -max(limit, 1):].to(self.device)  # keep the end: history + question
            sample = self.params["temperature"] > 0
            torch.manual_seed(self.params["seed"])
            start = time.perf_counter()
            with torch.no_grad():
                out = self.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=sample,
                                          temperature=self.params["temperature"] if sample else None,
                                          max_new_tokens=self.params["max_new_tokens"],
                                          pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
            self.usage["requests"] += 1
            self.usage["seconds"] += time.perf_counter() - start
            self.usage["prompt_tokens"] += int(ids.shape[1])
            self.usage["completion_tokens"] += int(out.shape[1] - ids.shape[1])
            yield i, self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


# ---------------------------------------------------------------- the SQLite answer cache


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


class GenerationCache:
    """Every generated text, keyed by (model id, prompt hash, parameters), in one SQLite file.

    Writes are transactions in WAL mode, so a process killed mid-run leaves every committed answer
    intact and at most the last uncommitted batch missing. A file is bound to the model that first
    wrote it; opening it for another model is an error (use one cache file per model).
    """

    def __init__(self, path: str | os.PathLike, model_id: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute("CREATE TABLE IF NOT EXISTS texts (model_id TEXT, prompt_hash TEXT, params TEXT, "
                            "prompt TEXT, text TEXT, created REAL, PRIMARY KEY (model_id, prompt_hash, params))")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('model_id', ?)", (model_id,))
            self.db.commit()
            bound = self.db.execute("SELECT value FROM meta WHERE key='model_id'").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise CacheError(f"{self.path} is not a usable SQLite cache ({err}): move it away or pass another --cache") from err
        if bound != model_id:
            self.db.close()
            raise CacheError(f"cache {self.path} holds texts of model {bound!r}, not {model_id!r}: pass another "
                             "--cache file for this model (one file per model)")
        self.model_id = model_id

    def get(self, prompt: str, params: dict) -> str | None:
        row = self.db.execute("SELECT text FROM texts WHERE model_id=? AND prompt_hash=? AND params=?",
                              (self.model_id, prompt_hash(prompt), params_key(params))).fetchone()
        return None if row is None else row[0]

    def put_many(self, items: list[tuple[str, str]], params: dict) -> None:
        key = params_key(params)
        with self.db:  # one transaction: all of the batch or none of it
            self.db.executemany("INSERT OR REPLACE INTO texts VALUES (?, ?, ?, ?, ?, ?)",
                                [(self.model_id, prompt_hash(p), key, p, t, time.time()) for p, t in items])

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM texts").fetchone()[0]

    def close(self) -> None:
        self.db.close()


class CachedGenerator(TextGenerator):
    """A generator behind a GenerationCache: only prompts never answered before are generated.

    `calls` counts texts generated (LLM calls), `hits` counts answers served from the cache.
    Answers are committed every `flush_every` texts and on any exit, so an endpoint failure halfway
    loses nothing already answered.
    """

    def __init__(self, generator: TextGenerator, cache: GenerationCache, flush_every: int = 32):
        if cache.model_id != generator.model_id:
            raise CacheError(f"cache is bound to {cache.model_id!r} but the generator is {generator.model_id!r}")
        self.inner, self.cache, self.flush_every = generator, cache, flush_every
        self.model_id, self.params, self.usage = generator.model_id, generator.params, generator.usage
        self.calls = 0
        self.hits = 0
        self.prompt_chars = 0  # characters of the prompts actually sent (a proxy for LLM input tokens)

    def generate_each(self, prompts):
        answers: dict[str, str] = {}
        missing = []
        for p in dict.fromkeys(prompts):
            cached = self.cache.get(p, self.params)
            if cached is None:
                missing.append(p)
            else:
                answers[p] = cached
        self.hits += len(prompts) - len(missing)
        self.prompt_chars += sum(len(p) for p in missing)
        pending: list[tuple[str, str]] = []
        try:
            for j, text in self.inner.generate_each(missing):
                self.calls += 1
                answers[missing[j]] = text
                pending.append((missing[j], text))
                if len(pending) >= self.flush_every:
                    self.cache.put_many(pending, self.params)
                    pending = []
        finally:
            if pending:
                self.cache.put_many(pending, self.params)
        for i, p in enumerate(prompts):
            yield i, answers[p]


def make_generator(llm: str = "rules", url: str | None = None, model: str | None = None, **options) -> TextGenerator:
    """'rules' (offline default), 'openai' (needs url + model) or 'transformers' (model = path or zoo name)."""
    if llm == "rules":
        return RuleSummarizer(**options)
    if llm == "openai":
        if not url:
            raise InputError("--llm openai needs --llm-url (e.g. http://localhost:8000/v1 for vLLM)")
        return OpenAIGenerator(url, model or "", **options)
    if llm == "transformers":
        return TransformersGenerator(model or "tiny-lm", **options)
    raise InputError(f"--llm must be rules, openai or transformers, got {llm!r}")
