"""Evaluation of pruned models: perplexity, zero-shot multiple choice, parameters, memory, throughput."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from tenfold.core.errors import InputError


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def weight_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())


def sample_windows(n_tokens: int, seq_len: int, count: int | None, seed: int = 0) -> torch.Tensor:
    """Starts of `count` non-overlapping windows of `seq_len` tokens drawn uniformly (seeded, without
    replacement) from the whole stream, sorted; every window when `count` is None or too large."""
    n = (n_tokens - 1) // seq_len
    if n < 1:
        raise InputError(f"evaluation text has {n_tokens} tokens, fewer than one window of {seq_len}; "
                         "give a longer text or a shorter --seq-len")
    grid = torch.arange(n) * seq_len
    if count is None or count >= n:
        return grid
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count]
    return grid[pick.sort().values]


@torch.no_grad()
def window_nll(model: nn.Module, ids: torch.Tensor, starts: torch.Tensor, seq_len: int,
               batch_size: int = 8) -> torch.Tensor:
    """Mean next-token negative log-likelihood (nats) of each window `ids[s: s + seq_len]`, float64."""
    device = next(p.device for p in model.parameters() if p.device.type != "meta")
    model.eval()
    out = []
    for i in range(0, len(starts), batch_size):
        x = torch.stack([ids[s: s + seq_len] for s in starts[i: i + batch_size].tolist()]).to(device)
        logits = model(input_ids=x, use_cache=False).logits[:, :-1].float()
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
        out.append(nll.double().mean(dim=1).cpu())
    return torch.cat(out)


def perplexity_of(nll: torch.Tensor) -> float:
    """Perplexity of equal-length windows: exp of their mean per-token NLL."""
    return math.exp(float(nll.mean()))


def perplexity(model: nn.Module, ids: torch.Tensor, seq_len: int, max_windows: int | None = None,
               seed: int = 0, batch_size: int = 8) -> float:
    """Perplexity over `max_windows` windows of `seq_len` tokens drawn across the whole id stream."""
    starts = sample_windows(len(ids), seq_len, max_windows, seed)
    return perplexity_of(window_nll(model, ids, starts, seq_len, batch_size))


@torch.no_grad()
def generation_throughput(model: nn.Module, prompt: torch.Tensor, new_tokens: int = 64, repeats: int = 3,
                          warmup: int = 1) -> dict:
    """Greedy generation speed: new tokens per second (median of `repeats`), KV cache on.

    `prompt` is (batch, prompt length); every row generates exactly `new_tokens` tokens.
    """
    device = next(p.device for p in model.parameters() if p.device.type != "meta")
    model.eval()
    prompt = prompt.to(device)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                  pad_token_id=0, use_cache=True)
    for _ in range(warmup):
        model.generate(prompt, **kwargs)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        model.generate(prompt, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t)
    sec = sorted(times)[len(times) // 2]
    out = {"tokens_per_second": prompt.shape[0] * new_tokens / sec, "seconds": sec, "run_seconds": times,
           "batch": int(prompt.shape[0]), "new_tokens": new_tokens}
    if device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def load_choices(path: str | Path) -> list[dict]:
    """A zero-shot multiple-choice set: JSON lines {"context": str, "choices": [str, ...], "label": int}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"multiple-choice file {path} does not exist")
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            ok = isinstance(d["context"], str) and len(d["choices"]) >= 2 and 0 <= int(d["label"]) < len(d["choices"])
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise InputError(f"{path}:{n}: expected {{\"context\": str, \"choices\": [str, ...], \"label\": int}}")
        items.append(d)
    if not items:
        raise InputError(f"{path}: no items")
    return items


@torch.no_grad()
def multiple_choice_accuracy(model: nn.Module, tokenizer, items: list[dict], length_normalise: bool = True) -> float:
    """Accuracy of picking the choice with the highest (per-token) log-likelihood after the context."""
    device = next(model.parameters()).device
    model.eval()
    correct = 0
    for it in items:
        ctx = tokenizer(it["context"], add_special_tokens=False)["input_ids"]
        best, best_score = 0, -math.inf
        for c, choice in enumerate(it["choices"]):
            cont = tokenizer(choice, add_special_tokens=False)["input_ids"]
            x = torch.tensor([ctx + cont], device=device)
            logp = model(input_ids=x).logits[0, :-1].float().log_softmax(-1)
            tgt = x[0, 1:]
            ll = logp[torch.arange(len(tgt)), tgt][len(ctx) - 1:].sum().item()
            score = ll / max(1, len(cont)) if length_normalise else ll
            if score > best_score:
                best, best_score = c, score
        correct += int(best == int(it["label"]))
    return correct / len(items)
