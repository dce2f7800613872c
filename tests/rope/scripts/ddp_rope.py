"""The rope trainer run once as one process and once under `accelerate launch --num_processes 2` (gloo): both
must end with the same weights (each process takes half of every step's formulas; one answer token each, so
the averaged gradients are the global batch's)."""

import sys

import torch

from tenfold.core.accel import accelerator
from tenfold.core.io import atomic_write_json
from tenfold.rope import (
    FormulaTransformer,
    ModelConfig,
    TrainConfig,
    Vocab,
    encode_split,
    make_splits,
    train_model,
)


def main(out: str) -> None:
    vocab = Vocab.build("boolean")
    s = make_splits("boolean", 7, "balanced", 200, 20, 20)
    train, val = (encode_split(x, vocab, cot=False) for x in (s.train, s.val))
    model = FormulaTransformer(ModelConfig.sized(len(vocab), 16, 2), seed=0)
    fit = train_model(model, train, val, TrainConfig(steps=12, batch=16, lr=1e-2, target=1.0, eval_every=6))
    acc = accelerator()
    if acc.is_main_process:
        weights = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
        atomic_write_json(out, {"weights": weights, "steps": fit["steps"], "processes": acc.num_processes})


if __name__ == "__main__":
    main(sys.argv[1])
