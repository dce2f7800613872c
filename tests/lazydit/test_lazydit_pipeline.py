"""LazyDiTPipeline against diffusers' own DiTPipeline: a random-init DiT with learned variance and a small
VAE, sampled with and without classifier-free guidance; one skip decision per guided sample."""

from __future__ import annotations

import pytest
import torch

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.lazydit.dit import LazyController, LazyDiTPipeline
from tenfold.lazydit.gates import LazyGates


def stock(pipe, labels, steps, guidance):
    return pipe(class_labels=labels, guidance_scale=guidance, generator=torch.Generator().manual_seed(7),
                num_inference_steps=steps, output_type="pt").images


@pytest.mark.parametrize("guidance", [4.0, 1.0])
def test_without_gates_the_images_equal_the_stock_dit_pipeline_bit_for_bit(small_pipeline, guidance):
    labels = [3, 999, 0]
    ref = stock(small_pipeline, labels, 4, guidance)
    lazy = LazyDiTPipeline.from_pipe(small_pipeline)
    out = lazy(labels, 4, guidance_scale=guidance, generator=torch.Generator().manual_seed(7), output_type="pt")
    assert ref.shape == (3, 3, 16, 16) and torch.equal(out.images, ref)
    assert out.skip_fraction == 0 and out.macs_ratio == pytest.approx(1.0)
    untrained = LazyGates.for_model(small_pipeline.transformer, 4)  # zero gates: s = 0.5, nothing skipped
    out = lazy(labels, 4, guidance_scale=guidance, generator=torch.Generator().manual_seed(7), output_type="pt",
               gates=untrained)
    assert torch.equal(out.images, ref) and out.skip_fraction == 0
    full = lazy.macs.full * 4 * (2 if guidance > 1 else 1)
    assert out.macs == pytest.approx(full + out.stats.gate_calls / 3 * lazy.macs.gate)  # the gates' own cost


def test_skipping_changes_the_images_and_the_cost_consistently(small_pipeline):
    lazy = LazyDiTPipeline.from_pipe(small_pipeline)
    gates = LazyGates.for_model(small_pipeline.transformer, 4)
    out = lazy([5, 6], 4, guidance_scale=4.0, generator=torch.Generator().manual_seed(7), output_type="pt",
               gates=gates, threshold=0.9)  # zero gates: s = 0.5 < 0.9 skips every gated module
    ref = stock(small_pipeline, [5, 6], 4, 4.0)
    assert not torch.equal(out.images, ref) and torch.isfinite(out.images).all()
    # steps 3 and 1 are gated (every other step); 2 of 4 steps x both modules skipped, per row
    assert out.skip_fraction == pytest.approx(0.5)
    m = lazy.macs
    saved = 2 * 2 * (m.attn + m.mlp)  # 2 gated steps x 2 blocks x (attn + mlp) per row
    assert out.macs == pytest.approx(2 * (4 * m.full - saved) + out.stats.gate_calls / 2 * m.gate)


class RowScores:
    """A policy giving each batch row its own fixed score (rows: [cond samples; uncond samples])."""

    num_steps, num_layers, gate_cost = 4, 2, True

    def __init__(self, scores):
        self.scores = torch.tensor(scores)

    def is_active(self, step):
        return True

    def keep_probability(self, kind, step, layer, z):
        return self.scores.to(z.dtype)


def test_guided_halves_of_a_sample_share_one_decision_from_the_mean_score(small_pipeline):
    ctl = LazyController(small_pipeline.transformer, RowScores([0.9, 0.1, 0.2, 0.3]), paired=True)
    try:
        keep = ctl._keep("attn", 0, torch.zeros(4, 16, 16))
    finally:
        ctl.detach()
    # sample 0: (0.9 + 0.2) / 2 = 0.55 keeps both halves; sample 1: (0.1 + 0.3) / 2 = 0.2 skips both
    assert keep.tolist() == [True, False, True, False]
    lazy = LazyDiTPipeline.from_pipe(small_pipeline)
    out = lazy([1, 2], 4, guidance_scale=4.0, output_type="pt", gates=RowScores([0.9, 0.1, 0.2, 0.3]),
               generator=torch.Generator().manual_seed(0))
    assert out.stats.skipped["attn"] == 3 * 2 * 2  # 3 steps with a cache x 2 blocks x both halves of sample 1
    assert torch.isfinite(out.images).all()


def test_output_types_follow_the_stock_pipeline(small_pipeline):
    lazy = LazyDiTPipeline.from_pipe(small_pipeline)
    arr = lazy([1], 2, guidance_scale=1.0, output_type="np").images
    pil = lazy([1], 2, guidance_scale=1.0, output_type="pil").images
    assert arr.shape == (1, 16, 16, 3) and pil[0].size == (16, 16)
    with pytest.raises(InputError, match="output_type"):
        lazy([1], 2, output_type="latent")


def test_encode_gives_scaled_latents_of_the_transformers_shape(small_pipeline):
    lazy = LazyDiTPipeline.from_pipe(small_pipeline)
    x0 = lazy.encode(torch.rand(3, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    assert x0.shape == (3, 4, 8, 8)
    with pytest.raises(InputError, match="expects"):
        lazy.encode(torch.rand(3, 3, 32, 32))


def test_bad_pipelines_and_labels_are_refused(small_pipeline, tmp_path):
    from diffusers import EulerDiscreteScheduler

    with pytest.raises(UnsupportedError, match="DDIM"):
        LazyDiTPipeline(small_pipeline.transformer, EulerDiscreteScheduler())
    with pytest.raises(UnsupportedError, match="DiTPipeline"):
        LazyDiTPipeline.from_pipe(object())
    with pytest.raises(InputError, match="model_index.json"):
        LazyDiTPipeline.from_pretrained(tmp_path)
    lazy = LazyDiTPipeline.from_pipe(small_pipeline)
    with pytest.raises(InputError, match="class labels"):
        lazy([1000], 2)
    with pytest.raises(InputError, match="trained for 4"):
        lazy([1], 3, gates=LazyGates.for_model(small_pipeline.transformer, 4))


def test_a_dit_without_null_class_cannot_be_guided(small_dit):
    model, scheduler = small_dit
    model.transformer_blocks[0].norm1.emb.class_embedder.embedding_table = torch.nn.Embedding(10, 16)
    with pytest.raises(InputError, match="guidance_scale 1"):
        LazyDiTPipeline(model, scheduler)([1], 2, guidance_scale=3.0)


def test_from_pretrained_loads_a_saved_dit_pipeline(small_pipeline_dir):
    lazy = LazyDiTPipeline.from_pretrained(small_pipeline_dir)
    out = lazy([1, 2], 3, guidance_scale=2.0, output_type="pt", generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (2, 3, 16, 16) and 0 <= out.images.min() and out.images.max() <= 1


def test_a_pipeline_saved_with_another_scheduler_is_sampled_with_ddim_of_its_schedule(small_pipeline, tmp_path):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    small_pipeline.scheduler = DPMSolverMultistepScheduler.from_config(small_pipeline.scheduler.config)
    small_pipeline.save_pretrained(tmp_path)
    lazy = LazyDiTPipeline.from_pretrained(tmp_path)
    assert isinstance(lazy.scheduler, DDIMScheduler)
    reference = DDIMScheduler(num_train_timesteps=1000)
    assert torch.equal(lazy.scheduler.alphas_cumprod, reference.alphas_cumprod)
