"""The looped trainer run once as one process and once under `accelerate launch --num_processes 2` (gloo):
both must end with the same weights (each process takes half of every step's prompts)."""

import sys

import torch

from tenfold.core.accel import accelerator
from tenfold.core.io import atomic_write_json
from tenfold.looped import LinearLoopedTransformer, TaskConfig, TrainConfig, train_model


def main(out: str) -> None:
    model = LinearLoopedTransformer(3, 1, seed=0).double()
    train_model(model, TaskConfig(d=3, n=12, kappa_max=5.0), 3, TrainConfig(steps=15, batch=16, lr=1e-2))
    acc = accelerator()
    if acc.is_main_process:
        P, Q = model.weights()
        atomic_write_json(out, {"weights": torch.cat([P.flatten(), Q.flatten()]).tolist(), "processes": acc.num_processes})


if __name__ == "__main__":
    main(sys.argv[1])
