"""UIF and the backbones: attention against float64 references, masks, dense-field plumbing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tenfold.liber.backbones import DIN, DCNv2, DeepFM, FeatureEmbedding
from tenfold.liber.fusion import TOKEN_PATTERN, HashingSVDEncoder, InterestFusion, target_attention


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


def _reference_fusion(fusion, table, slots, query):
    """Per sample, float64: adapter on each valid slot, null slot first, masked self-attention, target attention."""
    f = fusion.double()
    out = []
    for b in range(slots.shape[0]):
        p = slots.shape[1]
        rows = [f.null[0, 0]]
        valid = [True]
        for i in range(p):
            s = int(slots[b, i])
            z = f.adapter(table[max(s, 0)].double()) + f.recency.weight[f.max_partitions - p + i]
            rows.append(z)
            valid.append(s >= 0)
        z = torch.stack(rows)  # (P+1, d)
        d, h = z.shape[1], f.heads
        if f.self_attention:
            q, k, v = f.qkv(z).view(p + 1, 3, h, d // h).permute(1, 2, 0, 3)
            scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
            scores[..., ~torch.tensor(valid)] = float("-inf")
            att = (torch.softmax(scores, -1) @ v).transpose(0, 1).reshape(p + 1, d)
            z = f.norm(z + f.proj(att))
        keys, vals, qq = f.w_k(z), f.w_v(z), f.w_q(query[b].double())
        w = torch.softmax((keys @ qq / math.sqrt(d)).masked_fill(~torch.tensor(valid), float("-inf")), 0)
        out.append(w @ vals)
    return torch.stack(out)


@pytest.mark.parametrize("self_attention", [True, False])
def test_fusion_equals_a_per_sample_float64_reference_and_ignores_unused_rows(self_attention):
    torch.manual_seed(0)
    fusion = InterestFusion(d_in=6, d=8, d_query=8, max_partitions=4, self_attention=self_attention).eval()
    table = torch.randn(7, 6)
    slots = torch.tensor([[-1, -1, 2, 5], [-1, -1, -1, -1], [0, 1, 3, 6]])  # second user: no closed partition yet
    q = torch.randn(3, 8)
    out = fusion(table, slots, q)
    assert torch.isfinite(out).all()  # the learned null slot keeps empty users finite
    table2 = table.clone()
    table2[4] = 100.0  # a row no sample uses
    assert torch.allclose(out, fusion(table2, slots, q), atol=1e-6)
    ref = _reference_fusion(fusion, table.double(), slots, q.double())
    np.testing.assert_allclose(out.detach().double().numpy(), ref.detach().numpy(), rtol=1e-4, atol=1e-5)


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


def _sign_probe(token_pattern):
    """Held-out accuracy of a linear probe reading a genre preference's sign from the encoding."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    genres = ["Drama", "Comedy", "Horror", "Action"]
    texts, signs = [], []
    for _ in range(400):
        g = rng.choice(genres)
        sign = int(rng.integers(0, 2))
        value = rng.choice([0.25, 0.5, 0.75])
        texts.append(f"Genre scores: {g} {'+' if sign else '-'}{value:.2f}; mean rating {rng.uniform(2, 5):.1f}")
        signs.append(sign)
    enc = HashingSVDEncoder(dim=16, seed=0, token_pattern=token_pattern).fit(texts[:300])
    x = enc.encode(texts)
    probe = LogisticRegression(max_iter=2000).fit(x[:300], signs[:300])
    return probe.score(x[300:], signs[300:])


def test_encoder_keeps_numbers_and_signs():
    enc = HashingSVDEncoder(dim=4, seed=0).fit([f"Drama {s}{v} Comedy {t}" for s in "+-" for v in ("0.25", "0.5")
                                                for t in ("1", "2", "3")])
    up, down = enc.encode(["Drama +0.25", "Drama -0.25"])
    assert not np.allclose(up, down, atol=1e-3)  # scikit-learn's default pattern reads both as "drama 25"
    assert _sign_probe(TOKEN_PATTERN) > 0.95
    assert _sign_probe(r"(?u)\b\w\w+\b") < 0.7  # negative control: the old default pattern loses the sign


def test_encoder_keeps_its_width_on_near_empty_texts():
    enc = HashingSVDEncoder(dim=8, seed=0).fit(["", "  ", "a b", "a c", ""])  # a tiny LM's answers
    out = enc.encode(["", "a b", "zzz"])
    assert out.shape == (3, 8) and np.all(out[0] == 0) and np.all(out[2] == 0)
    assert np.isclose(np.linalg.norm(out[1]), 1.0)
    assert np.all(HashingSVDEncoder(dim=4).fit(["", ""]).encode(["x"]) == 0)


def test_fusion_setting_is_checked_and_chooses_the_layer():
    from tenfold.core.errors import InputError
    from tenfold.liber.pipeline import LiberConfig

    with pytest.raises(InputError, match="fusion"):
        LiberConfig(fusion="cross")
    both = InterestFusion(d_in=6, d=8, d_query=8, self_attention=True)
    target = InterestFusion(d_in=6, d=8, d_query=8, self_attention=False)
    assert hasattr(both, "qkv") and not hasattr(target, "qkv")
    assert sum(p.numel() for p in both.parameters()) - sum(p.numel() for p in target.parameters()) == 8 * 24 + 24 + 8 * 8 + 8 + 16
