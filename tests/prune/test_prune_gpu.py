"""The CUDA path: the same prune on the GPU as on the CPU (skips without CUDA)."""

from __future__ import annotations

import copy

import pytest
import torch

from tenfold.prune.pruner import PruneConfig, prune
from tenfold.prune.surgery import layer_sizes

pytestmark = pytest.mark.gpu


def test_prune_on_cuda_matches_the_cpu_prune(tiny_model):
    model = tiny_model("llama", layers=3).double()
    calib = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(0))
    cpu = prune(copy.deepcopy(model), calib, 0.4, "numerical", config=PruneConfig(allocation="standardised"))
    gpu = prune(copy.deepcopy(model).cuda(), calib, 0.4, "numerical", config=PruneConfig(allocation="standardised"))
    assert layer_sizes(gpu) == layer_sizes(cpu)
    ids = calib[:2]
    with torch.no_grad():
        torch.testing.assert_close(gpu(input_ids=ids.cuda()).logits.cpu(), cpu(input_ids=ids).logits,
                                   rtol=1e-6, atol=1e-8)


def test_cpu_resident_model_prunes_one_layer_at_a_time_on_cuda(tiny_model):
    """PruneConfig(device="cuda"): weights stay in CPU memory, each layer visits the GPU."""
    model = tiny_model("llama", layers=3).double()
    calib = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(0))
    ref = prune(copy.deepcopy(model), calib, 0.4, "numerical", config=PruneConfig(allocation="standardised"))
    out = prune(copy.deepcopy(model), calib, 0.4, "numerical",
                config=PruneConfig(allocation="standardised", device="cuda"))
    assert all(p.device.type == "cpu" for p in out.parameters())
    with torch.no_grad():
        torch.testing.assert_close(out(input_ids=calib[:2]).logits, ref(input_ids=calib[:2]).logits,
                                   rtol=1e-6, atol=1e-8)
