"""The CUDA path: the formula transformers give the CPU's logits on the GPU, train there, and the bfloat16
evaluation leaves the model in float32 on its device."""

from __future__ import annotations

import pytest
import torch

from tenfold.rope.model import POSITIONS, FormulaTransformer, ModelConfig
from tenfold.rope.tasks import make_splits
from tenfold.rope.training import TrainConfig, answer_accuracy, encode_split, greedy_accuracy, train_model
from tenfold.rope.vocab import Vocab


@pytest.mark.gpu
@pytest.mark.parametrize("position", POSITIONS)
def test_cuda_logits_match_cpu(position):
    vocab = Vocab.build("boolean")
    ids = torch.randint(1, len(vocab), (4, 31), generator=torch.Generator().manual_seed(0))
    model = FormulaTransformer(ModelConfig.sized(len(vocab), 32, 2, position), seed=0)
    cpu = model(ids)
    gpu = model.to("cuda")(ids.to("cuda")).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_training_and_evaluation_run_on_cuda(monkeypatch):
    monkeypatch.setenv("TENFOLD_DEVICE", "cuda")
    vocab = Vocab.build("boolean")
    s = make_splits("boolean", 9, "skewed", 400, 40, 40)
    train, val, test = (encode_split(x, vocab, cot=False) for x in (s.train, s.val, s.test))
    model = FormulaTransformer(ModelConfig.sized(len(vocab), 16, 1), seed=0).to("cuda")
    fit = train_model(model, train, val, TrainConfig(steps=40, lr=1e-2, eval_every=10))
    assert fit["steps"] >= 10 and model.embed.weight.device.type == "cuda"
    low = answer_accuracy(model, test, dtype=torch.bfloat16)
    assert low.shape == (40,) and model.embed.weight.dtype == torch.float32
    chain = [encode_split(x, vocab, cot=True) for x in (s.train, s.val)]
    cot = FormulaTransformer(ModelConfig.sized(len(vocab), 16, 2), seed=0).to("cuda")
    train_model(cot, chain[0], chain[1], TrainConfig(steps=10, cot=True, eval_every=5))
    assert greedy_accuracy(cot, chain[1]).shape == (40,)
