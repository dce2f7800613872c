"""RoPE's relative-position property, agreement with the LLaMA implementation, and the model variants."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.rope import (
    FormulaTransformer,
    ModelConfig,
    Vocab,
    alibi_slopes,
    apply_rope,
    rope_angles,
    rope_scores,
)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 500), st.integers(0, 500), st.integers(-200, 200), st.integers(1, 8), st.integers(0, 999))
def test_rope_score_depends_only_on_relative_offset(s, t, shift, half, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2 * half, generator=g, dtype=torch.float64), torch.randn(2 * half, generator=g, dtype=torch.float64)
    shift = max(shift, -min(s, t))  # keep positions non-negative
    a, b = rope_scores(q, k, s, t), rope_scores(q, k, s + shift, t + shift)
    assert torch.allclose(a, b, atol=1e-9)
    assert torch.allclose(a, rope_scores(q, k, 0, t - s) if t >= s else rope_scores(q, k, s - t, 0), atol=1e-9)


def test_rope_is_a_rotation_and_identity_at_position_zero():
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    cos, sin = rope_angles(torch.arange(5), 8)
    y = apply_rope(x, cos, sin)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1))
    assert torch.allclose(y[:, 0], x[:, 0])


def test_rope_matches_transformers_llama_rotary():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    q, k = torch.randn(2, 2, 7, 8, dtype=torch.float64), torch.randn(2, 2, 7, 8, dtype=torch.float64)
    cos, sin = rope_angles(torch.arange(7), 8)
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos[None], sin[None])
    assert torch.allclose(apply_rope(q, cos, sin), q_ref) and torch.allclose(apply_rope(k, cos, sin), k_ref)


def test_alibi_slopes_for_eight_heads():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))


@pytest.mark.parametrize("position", ["rope", "nope", "absolute", "alibi"])
def test_models_are_causal_for_every_position_encoding(position):
    vocab = Vocab.build("boolean")
    model = FormulaTransformer(ModelConfig(len(vocab), 16, 2, 2, 32, position=position)).eval()
    ids = torch.randint(1, len(vocab), (2, 9))
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] % (len(vocab) - 1)) + 1
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6)  # a later token never changes an earlier logit


def test_looped_model_applies_one_shared_block_k_times():
    vocab = Vocab.build("boolean")
    looped = FormulaTransformer(ModelConfig.sized(len(vocab), 32, 1, looped=True)).eval()
    deep = FormulaTransformer(ModelConfig.sized(len(vocab), 32, 3)).eval()
    assert len(looped.blocks) == 1 and len(deep.blocks) == 3
    assert looped.num_parameters() == FormulaTransformer(ModelConfig.sized(len(vocab), 32, 1)).num_parameters()
    for block in deep.blocks:  # three copies of the looped block: the same function as three loops
        block.load_state_dict(looped.blocks[0].state_dict())
    deep.load_state_dict({k: v for k, v in looped.state_dict().items() if not k.startswith("blocks")}, strict=False)
    ids = torch.randint(1, len(vocab), (2, 9))
    with torch.no_grad():
        assert torch.allclose(looped(ids, 3), deep(ids), atol=1e-6)
    with pytest.raises(InputError, match="loops"):
        looped(ids, 0)


def test_sized_config_uses_heads_of_sixteen_dimensions():
    assert (ModelConfig.sized(10, 48, 2).n_heads, ModelConfig.sized(10, 24, 1).n_heads) == (3, 1)
    assert ModelConfig.sized(10, 32, 4).d_ff == 64


def test_bad_config_and_vocabulary_errors():
    with pytest.raises(InputError, match="position"):
        ModelConfig(10, position="sinusoid")
    with pytest.raises(InputError, match="token 'xor' is not in the boolean vocabulary"):
        Vocab.build("boolean").ids(["and", "xor"])


def test_alibi_attention_weights_decay_with_distance_as_softmax_of_minus_slope_times_distance():
    from tenfold.rope.model import Attention

    cfg = ModelConfig(10, 4, 2, 1, 8, position="alibi")
    attn = Attention(cfg)
    with torch.no_grad():  # q = k = 0 and v = x, out = identity: the weights come from the bias alone
        attn.qkv.weight.zero_()
        attn.qkv.weight[8:] = torch.eye(4)
        attn.out.weight.copy_(torch.eye(4))
    x = torch.randn(1, 6, 4)
    y = attn(x)
    slopes = alibi_slopes(2)
    for h in range(2):
        for i in range(6):
            w = torch.softmax(-slopes[h] * (i - torch.arange(i + 1)).float(), 0)
            ref = (w[:, None] * x[0, : i + 1, 2 * h : 2 * h + 2]).sum(0)
            assert torch.allclose(y[0, i, 2 * h : 2 * h + 2], ref, atol=1e-6)
