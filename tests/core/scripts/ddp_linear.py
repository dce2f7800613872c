"""A tiny regression loop written the way every tenfold training loop is: run by the accelerate test
once as one process and once under `accelerate launch --cpu --num_processes 2`."""

import sys

import torch

from tenfold.core.accel import accelerator, local_slice
from tenfold.core.io import atomic_write_json


def main(out: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 5, dtype=torch.float64)
    y = x @ torch.arange(1.0, 6.0, dtype=torch.float64) + 0.1 * torch.randn(64, dtype=torch.float64)
    model = torch.nn.Linear(5, 1).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    acc = accelerator()
    model, opt = acc.prepare(model, opt)
    gen = torch.Generator().manual_seed(1)
    seen = 0  # examples this process computed on: the processes together must see each global batch once
    for _ in range(30):
        batch = torch.randperm(64, generator=gen)[:16]  # the same global batch in every process
        idx = local_slice(batch, acc)
        seen += len(idx)
        loss = torch.nn.functional.mse_loss(model(x[idx]).squeeze(-1), y[idx])
        acc.backward(loss)
        opt.step()
        opt.zero_grad()
    weights = acc.unwrap_model(model).weight.detach().flatten().tolist()
    examples = int(acc.reduce(torch.tensor([seen]), reduction="sum").item()) if acc.num_processes > 1 else seen
    # every rank calls the writer; Result.write / Checkpoint.save make the same check inside
    if acc.is_main_process:
        atomic_write_json(out, {"weights": weights, "processes": acc.num_processes, "examples": examples})


if __name__ == "__main__":
    main(sys.argv[1])
