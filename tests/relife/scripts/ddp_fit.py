"""`relife`'s training loop run once as one process and once under `accelerate launch` with two CPU
processes by test_relife_accel.py: argv = lists folder, model name, output JSON."""

import sys

import torch

from tenfold.core.io import atomic_write_json
from tenfold.core.runtime import is_main_process, seed_everything
from tenfold.data.lists import ListSplits
from tenfold.relife.train import TrainConfig, train_model


def main(lists: str, name: str, out: str) -> None:
    torch.set_num_threads(1)
    seed_everything(0)
    splits = ListSplits.load(lists)
    model, history = train_model(name, splits, TrainConfig(max_epochs=2, batch_size=16, lr=1e-2, seed=0), "intent", dim=8)
    weights = torch.cat([p.detach().flatten().double() for p in model.parameters()]).tolist()
    if is_main_process():
        from accelerate.state import PartialState

        atomic_write_json(out, {"weights": weights, "val": history["val"], "processes": PartialState().num_processes})


if __name__ == "__main__":
    main(*sys.argv[1:4])
