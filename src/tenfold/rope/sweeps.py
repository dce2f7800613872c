"""The measurements: accuracy by (position encoding, depth L, formula depth), the looped and
chain-of-thought contrasts, and float32 vs bfloat16 evaluation."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import torch

from tenfold.core.runtime import pick_device
from tenfold.rope.model import FormulaTransformer, ModelConfig, default_loops
from tenfold.rope.tasks import Instance, dataset
from tenfold.rope.training import TrainConfig, accuracy, train_model
from tenfold.rope.vocab import Vocab


@dataclass(frozen=True)
class SweepConfig:
    """One task's grid: train on depths 1..train_depth, test on depths 1..test_depth."""

    task: str = "boolean"
    modulus: int = 2
    encoding: str = "postfix"
    train_depth: int = 2
    test_depth: int = 6
    n_train_per_depth: int = 1000
    n_test_per_depth: int = 100
    d_model: int = 32
    n_heads: int = 2
    train: TrainConfig = TrainConfig(steps=300, batch=48)
    seed: int = 0


def data(cfg: SweepConfig) -> tuple[list[Instance], dict[int, list[Instance]]]:
    train = dataset(cfg.task, range(1, cfg.train_depth + 1), cfg.n_train_per_depth, cfg.encoding, cfg.modulus, cfg.seed)
    tests = {d: dataset(cfg.task, [d], cfg.n_test_per_depth, cfg.encoding, cfg.modulus, cfg.seed + 7919)
             for d in range(1, cfg.test_depth + 1)}
    return train, tests


def fit(cfg: SweepConfig, vocab: Vocab, train: list[Instance], position: str, layers: int, looped: bool = False,
        cot: bool = False) -> FormulaTransformer:
    model = FormulaTransformer(ModelConfig(len(vocab), cfg.d_model, cfg.n_heads, layers, 2 * cfg.d_model,
                                           position=position, looped=looped), seed=cfg.seed).to(pick_device())
    loops = (lambda b: default_loops(max(i.depth for i in b))) if looped else None
    train_model(model, train, vocab, replace(cfg.train, cot=cot, seed=cfg.seed), loops=loops,
                desc=f"{cfg.task} {position} L={layers}{' looped' if looped else ''}{' cot' if cot else ''}")
    return model


def by_depth(model: FormulaTransformer, tests: dict[int, list[Instance]], vocab: Vocab, cot: bool = False,
             looped: bool = False, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    return {str(d): accuracy(model, t, vocab, cot=cot, loops=default_loops(d) if looped else None, dtype=dtype)
            for d, t in tests.items()}


def majority(train: list[Instance], tests: dict[int, list[Instance]]) -> dict[str, float]:
    """Accuracy of always answering the most common training answer (the floor a model must beat)."""
    top = Counter(i.answer for i in train).most_common(1)[0][0]
    return {str(d): sum(i.answer == top for i in t) / len(t) for d, t in tests.items()}


def grid(cfg: SweepConfig, positions: list[str], layers: list[int], precision: bool = False) -> dict:
    """acc[position][L][depth]; with `precision`, also the RoPE models evaluated in bfloat16."""
    vocab = Vocab.build(cfg.task, cfg.modulus)
    train, tests = data(cfg)
    acc: dict = {}
    bf16: dict = {}
    for pos in positions:
        acc[pos] = {}
        for L in layers:
            model = fit(cfg, vocab, train, pos, L)
            acc[pos][str(L)] = by_depth(model, tests, vocab)
            if precision and pos == "rope":
                bf16[str(L)] = by_depth(model, tests, vocab, dtype=torch.bfloat16)
    out = {"acc": acc, "majority": majority(train, tests)}
    if precision:
        out["precision_acc"] = {"float32": acc.get("rope", {}), "bfloat16": bf16}
    return out


def contrasts(cfg: SweepConfig, looped_block_layers: int = 1, cot_layers: int = 2) -> dict[str, dict[str, float]]:
    """The looped RoPE model (one block, depth + 2 loops) and a chain-of-thought RoPE model."""
    vocab = Vocab.build(cfg.task, cfg.modulus)
    train, tests = data(cfg)
    looped = fit(cfg, vocab, train, "rope", looped_block_layers, looped=True)
    cot = fit(cfg, vocab, train, "rope", cot_layers, cot=True)
    return {"looped_acc": by_depth(looped, tests, vocab, looped=True), "cot_acc": by_depth(cot, tests, vocab, cot=True)}
