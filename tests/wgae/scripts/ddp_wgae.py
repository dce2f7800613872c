"""WGAE training as `test_wgae_ddp.py` runs it: once as one process, once under `accelerate launch` with two
gloo processes on CPU (each scores half of the Weibull draws). Writes the final parameters and topics."""

import sys

import torch

from tenfold.core.accel import accelerator
from tenfold.core.io import atomic_write_json
from tenfold.wgae.gpgbn import sample
from tenfold.wgae.model import WGAEConfig, train_wgae


def main(out: str, encoder: str) -> None:
    torch.set_num_threads(1)
    net = sample(60, 30, (4, 2), doc_length=30.0, mean_degree=6.0, seed=5)
    cfg = WGAEConfig(encoder=encoder, topics=(4, 2), hidden=8, heads=2, epochs=3, steps_per_epoch=2, samples=4,
                     decoder="exact")
    fit = train_wgae(net, cfg, seed=1)
    acc = accelerator()
    state = {k: v.detach().double().flatten().tolist() for k, v in fit.model.state_dict().items()}
    if acc.is_main_process:
        atomic_write_json(out, {"state": state, "processes": acc.num_processes})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
