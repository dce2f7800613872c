"""UIF and the backbones: attention against float64 references, masks, dense-field plumbing."""

from __future__ import annotations

import math

import numpy as np
import torch

from tenfold.liber.backbones import DIN, DCNv2, DeepFM, FeatureEmbedding
from tenfold.liber.fusion import HashingSVDEncoder, InterestFusion, target_attention


def test_target_attention_matches_a_float64_loop_reference():
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(3, 4, generator=g), torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)
    out = target_attention(q, k, v, mask)
    for b in range(3):
        idx = [i for i in range(5) if mask[b, i]]
        scores = [float(q[b].double() @ k[b, i].double()) / math.sqrt(4) for i in idx]
        w = np.exp(np.array(scores) - max(scores))
        w /= w.sum()
        ref = sum(wi * v[b, i].double().numpy() for wi, i in zip(w, idx, strict=True))
        np.testing.assert_allclose(out[b].double().numpy(), ref, rtol=1e-5, atol=1e-6)


def test_padded_partition_slots_do_not_change_the_fused_vector():
    torch.manual_seed(0)
    fusion = InterestFusion(d_text=6, d=8, d_query=8, max_partitions=4).eval()
    h = torch.randn(2, 4, 6)
    mask = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)  # second user: no closed partition yet
    q = torch.randn(2, 8)
    out = fusion(h, mask, q)
    h2 = h.clone()
    h2[~mask] = 100.0  # garbage in the padding
    assert torch.allclose(out, fusion(h2, mask, q), atol=1e-6)
    assert torch.isfinite(out).all()  # the learned null slot keeps empty users finite


def _embed():
    genres = torch.zeros(11, 3)
    genres[1:, 0] = 1
    genres[5:, 1] = 1
    return FeatureEmbedding(n_users=4, n_items=10, item_genres=genres, d=8)


def _batch(b=5):
    g = torch.Generator().manual_seed(1)
    return {"user": torch.randint(1, 5, (b,), generator=g), "item": torch.randint(1, 11, (b,), generator=g),
            "hist_items": torch.randint(0, 11, (b, 6), generator=g), "hist_ratings": torch.randint(1, 6, (b, 6), generator=g)}


def test_every_backbone_accepts_dense_fields_and_uses_them():
    torch.manual_seed(0)
    batch = _batch()
    for cls in (DIN, DCNv2, DeepFM):
        plain = cls(_embed())
        assert plain(batch).shape == (5,)
        aug = cls(_embed(), n_dense=2)
        d1, d2 = torch.randn(5, 2, 8), torch.randn(5, 2, 8)
        assert aug(batch, d1).shape == (5,) and not torch.allclose(aug(batch, d1), aug(batch, d2))


def test_deepfm_pairwise_term_equals_explicit_sum_over_field_pairs():
    torch.manual_seed(0)
    model = DeepFM(_embed(), n_dense=1).double()
    batch, dense = _batch(), torch.randn(5, 1, 8, dtype=torch.float64)
    h, mask = model.embed.history(batch)
    from tenfold.liber.backbones import masked_mean

    e = torch.stack([model.embed.user(batch["user"]), model.embed.target(batch), masked_mean(h, mask)], 1)
    e = torch.cat([e, dense], 1)
    pairs = sum((e[:, i] * e[:, j]).sum(-1) for i in range(4) for j in range(i + 1, 4))
    flat = e.flatten(1)
    expected = (model.first(flat) + model.deep(flat)).squeeze(-1) + pairs
    assert torch.allclose(model(batch, dense), expected, atol=1e-10)


def test_dcnv2_cross_layer_follows_its_formula():
    torch.manual_seed(0)
    model = DCNv2(_embed(), layers=1).double()
    batch = _batch()
    h, mask = model.embed.history(batch)
    from tenfold.liber.backbones import masked_mean

    x0 = torch.cat([model.embed.user(batch["user"]), model.embed.target(batch), masked_mean(h, mask)], -1)
    w, b = model.cross[0].weight, model.cross[0].bias
    x1 = x0 * (x0 @ w.T + b) + x0  # x_{l+1} = x0 * (W x_l + b) + x_l
    expected = model.out(torch.cat([x1, model.deep(x0)], -1)).squeeze(-1)
    assert torch.allclose(model(batch), expected, atol=1e-10)


def test_hashing_encoder_is_deterministic_and_unit_norm():
    texts = [f"strongly likes Drama {i % 7} dislikes Horror {i % 3} likes Comedy {i}" for i in range(80)]
    a = HashingSVDEncoder(dim=8, seed=0).fit(texts).encode(texts[:5])
    b = HashingSVDEncoder(dim=8, seed=0).fit(texts).encode(texts[:5])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
