"""Gate training on a miniature DiT, run by the test once as one process and once under
`accelerate launch --num_processes 2` (two gloo processes on CPU): the gates must come out the same."""

import sys

import torch

from tenfold.core.runtime import is_main_process
from tenfold.lazydit.gates import LazyConfig, LazyGates
from tenfold.lazydit.train import train_gates


def main(out: str) -> None:
    from diffusers import DDIMScheduler, DiTTransformer2DModel

    torch.manual_seed(0)
    model = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=1, out_channels=1,
                                  num_layers=2, sample_size=8, patch_size=2, num_embeds_ada_norm=10, norm_num_groups=1)
    x0 = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(32) % 10
    gates = LazyGates.for_model(model, 4)
    config = LazyConfig(rho_attn=1e-2, rho_mlp=1e-2, lr=1e-2, train_iters=5, batch_size=8)
    train_gates(model, DDIMScheduler(num_train_timesteps=1000), gates, x0, labels, config, seed=3)
    if is_main_process():
        gates.save(out)


if __name__ == "__main__":
    main(sys.argv[1])
