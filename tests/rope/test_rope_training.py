"""Encoding a split, training with early stopping, and the three accuracy readings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tenfold.core.runtime import torch_threads
from tenfold.rope import FormulaTransformer, ModelConfig, Vocab, generate, make_splits
from tenfold.rope.training import (
    IGNORE,
    TrainConfig,
    answer_accuracy,
    chain_accuracy,
    encode_split,
    greedy_accuracy,
    train_model,
)


def test_encoding_puts_targets_after_the_equals_sign_only():
    vocab = Vocab.build("boolean")
    rows = generate("boolean", 5, 4, "balanced", seed=1)
    enc = encode_split(rows, vocab, cot=False)
    assert enc.ids.shape == (4, 6) and enc.prompt_len == 6
    assert (enc.ids[:, 5] == vocab.ids(["="])[0]).all()
    assert (enc.labels[:, :5] == IGNORE).all() and torch.equal(enc.labels[:, 5], enc.answer)
    cot = encode_split(rows, vocab, cot=True)
    assert cot.ids.shape == (4, 5 + 1 + 5 - 1) and (cot.labels[:, :5] == IGNORE).all()
    assert torch.equal(cot.labels[:, -1], cot.answer)  # the chain ends with the answer
    assert [vocab.tokens[i] for i in cot.labels[0, 5:]] == [str(v) for v in rows[0].cot]


def test_training_learns_spines_and_stops_early_on_validation():
    vocab = Vocab.build("boolean")
    s = make_splits("boolean", 9, "skewed", 1500, 100, 100)
    train, val, test = (encode_split(r, vocab, False) for r in (s.train, s.val, s.test))
    model = FormulaTransformer(ModelConfig.sized(len(vocab), 32, 2), seed=0)
    with torch_threads(1):
        fit = train_model(model, train, val, TrainConfig(steps=400, batch=64, lr=1e-2, target=0.9, eval_every=20))
    assert fit["val_acc"] >= 0.9 and fit["stopped_early"] and fit["steps"] < 400
    ones = sum(r.answer for r in s.test) / len(s.test)
    majority = max(ones, 1 - ones)
    assert answer_accuracy(model, test).mean().item() > majority + 0.2  # unseen formulas, well above the floor


def test_greedy_decoding_is_right_wherever_the_teacher_forced_chain_is():
    vocab = Vocab.build("arithmetic", 3)
    rows = generate("arithmetic", 7, 60, "balanced", modulus=3, seed=2)
    data = encode_split(rows, vocab, cot=True)
    model = FormulaTransformer(ModelConfig.sized(len(vocab), 16, 1), seed=0)
    with torch_threads(1):
        train_model(model, data, data, TrainConfig(steps=30, batch=32, cot=True, eval_every=30))
    # a whole chain right under teacher forcing is exactly what greedy decoding reproduces, so greedy answer
    # accuracy is at least the teacher-forced whole-chain accuracy
    assert greedy_accuracy(model, data).mean().item() >= chain_accuracy(model, data)
    assert 0.0 <= chain_accuracy(model, data) <= 1.0


def test_bfloat16_evaluation_leaves_the_model_in_float32():
    vocab = Vocab.build("boolean")
    data = encode_split(generate("boolean", 7, 20, seed=0), vocab, cot=False)
    model = FormulaTransformer(ModelConfig.sized(len(vocab), 16, 1))
    low = answer_accuracy(model, data, dtype=torch.bfloat16)
    assert low.shape == (20,) and model.embed.weight.dtype == torch.float32
    assert low.dtype == torch.float64  # 19 of 20 right reads as exactly 0.95, so it meets a 0.95 target
    assert torch.tensor([1.0] * 19 + [0.0], dtype=low.dtype).mean().item() >= 0.95


def test_every_short_budget_trains():
    """OneCycleLR's warm-up divides by (warm-up fraction x steps - 1): no budget may make that zero (10 steps did)."""
    vocab = Vocab.build("boolean")
    rows = generate("boolean", 5, 8, "skewed", seed=2)
    data = encode_split(rows, vocab, cot=False)
    model = FormulaTransformer(ModelConfig.sized(len(vocab), 16, 1))
    with torch_threads(1):
        for steps in range(1, 22):
            fit = train_model(model, data, data, TrainConfig(steps=steps, batch=4, target=1.0, eval_every=steps))
            assert fit["steps"] >= 1 and fit["loss"] == fit["loss"]  # finite, not NaN


@pytest.mark.slow
def test_two_cpu_processes_train_the_same_model_as_one(tmp_path, one_and_two_processes):
    script = Path(__file__).parent / "scripts" / "ddp_rope.py"
    one, two = one_and_two_processes(script)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert (a["processes"], b["processes"], a["steps"], b["steps"]) == (1, 2, 12, 12)
    # float32 all-reduce sums in another order than one process's batch mean: equal to rounding, not bit for bit
    torch.testing.assert_close(torch.tensor(b["weights"]), torch.tensor(a["weights"]), atol=1e-5, rtol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json", "two.json"]  # one writer per run
