"""The CUDA path (skipped without CUDA): the fusion layer on the GPU equals the CPU, and a smoke reproduce
trains and evaluates every model on the GPU."""

from __future__ import annotations

import pytest
import torch

from tenfold.liber.fusion import InterestFusion


@pytest.mark.gpu
def test_fusion_on_cuda_equals_cpu():
    torch.manual_seed(0)
    fusion = InterestFusion(d_in=12, d=16, d_query=16, max_partitions=4).eval()
    table, q = torch.randn(9, 12), torch.randn(5, 16)
    slots = torch.tensor([[-1, -1, 2, 5], [-1, -1, -1, -1], [0, 1, 3, 8], [-1, 7, 7, 4], [-1, -1, -1, 6]])
    with torch.no_grad():
        cpu = fusion(table, slots, q)
        gpu = fusion.to("cuda")(table.cuda(), slots.cuda(), q.cuda()).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4)


@pytest.mark.gpu
def test_smoke_reproduce_trains_on_cuda(tmp_path):
    from tenfold.core.runtime import configure, pick_device
    from tenfold.liber.experiment import reproduce

    configure(device="cuda")
    try:
        assert pick_device().type == "cuda"
        result = reproduce("smoke", 0, tmp_path)
    finally:
        configure(device="auto")
    assert all(c.verdict in ("holds", "inconclusive", "fails") for c in result.claims)
    assert result.metrics["settings"]["users"]["din+liber"]["0"]["auc"] > 0.5
