"""WGAE / VGAE training as `test_wgae_ddp.py` runs it: once as one process, once under `accelerate launch`
with two gloo processes on CPU. WGAE: each process scores half of the Weibull draws; VGAE: every process
takes the same full batch. Writes the final parameters (and, for WGAE, a checkpoint) from the main process."""

import sys
from pathlib import Path

import torch

from tenfold.core.accel import accelerator
from tenfold.core.io import atomic_write_json
from tenfold.wgae.gpgbn import sample
from tenfold.wgae.model import WGAEConfig, train_wgae


def main(out: str, model: str) -> None:
    torch.set_num_threads(1)
    net = sample(60, 30, (4, 2), doc_length=30.0, mean_degree=6.0, seed=5)
    if model == "vgae":
        from tenfold.wgae.baselines import fit_autoencoder
        from tenfold.wgae.evaluate import split_links

        fitted = fit_autoencoder("vgae", net, split_links(net, 0.05, 0.10, 0), seed=1, steps=6, hidden=8, out=4,
                                 eval_every=2)
        state = {"embedding": fitted.embedding.flatten().tolist()}
    else:
        cfg = WGAEConfig(encoder=model, topics=(4, 2), hidden=8, heads=2, epochs=3, steps_per_epoch=2, samples=4,
                         decoder="exact")
        fit = train_wgae(net, cfg, seed=1, checkpoint=Path(out).with_suffix(".ckpt"), checkpoint_every=1)
        state = {k: v.detach().double().flatten().tolist() for k, v in fit.model.state_dict().items()}
    acc = accelerator()
    if acc.is_main_process:
        atomic_write_json(out, {"state": state, "processes": acc.num_processes})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
