"""The CUDA path: the lazy pipeline equals the stock DiTPipeline on the GPU, gates trained or loaded on the
CPU drive a GPU model, and the DiT-XL/2-shaped overhead timing runs (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from tenfold.lazydit.dit import LazyDiTPipeline
from tenfold.lazydit.gates import LazyGates


@pytest.mark.gpu
def test_cuda_pipeline_equals_stock_and_cpu_gates_drive_it(small_pipeline):
    pipe = small_pipeline.to("cuda")
    ref = pipe(class_labels=[1, 2], guidance_scale=4.0, generator=torch.Generator().manual_seed(0),
               num_inference_steps=4, output_type="pt").images
    lazy = LazyDiTPipeline.from_pipe(pipe)
    out = lazy([1, 2], 4, guidance_scale=4.0, generator=torch.Generator().manual_seed(0), output_type="pt")
    assert torch.equal(out.images, ref)
    gates = LazyGates.for_model(pipe.transformer, 4)  # on the CPU
    out = lazy([1, 2], 4, guidance_scale=4.0, generator=torch.Generator().manual_seed(0), output_type="pt",
               gates=gates, threshold=0.9)
    assert out.skip_fraction == pytest.approx(0.5) and torch.isfinite(out.images).all()


@pytest.mark.gpu
def test_dit_xl2_shaped_gating_overhead_is_measured():
    from tenfold.lazydit.overhead import gating_overhead

    out = gating_overhead(steps=4, images=2, repeats=1)
    assert out["gates, nothing skipped"]["skip_fraction"] == 0
    assert out["gates, every gated step skipped"]["skip_fraction"] == pytest.approx(0.5)
    assert out["full DDIM"]["seconds_per_image"] > 0 and out["gates, every gated step skipped"]["macs_ratio"] < 0.6
