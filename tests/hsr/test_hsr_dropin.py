"""The Hugging Face drop-in gives dense ReLU^alpha tokens and logits on every generate call, whatever
the order and lengths of the prompts, per model, in batches and with grouped-query attention."""

from __future__ import annotations

import copy

import pytest
import torch

from tenfold.core.errors import UnsupportedError
from tenfold.hsr.cache import DENSE, HSR, use_relu_attention, work_counts

PROMPTS = ["def f(x):\n    return", "import", "class Parser:\n    def parse(self, text):\n        for line in",
           "x =", "def f(x):\n    return"]


def _generate(model, ids, mask=None, new=6):
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new, do_sample=False, pad_token_id=0,
                             return_dict_in_generate=True, output_logits=True)
    return out.sequences, torch.stack(out.logits, 1)


@pytest.fixture()
def models(tiny_lm):
    model, tok = tiny_lm
    dense = use_relu_attention(copy.deepcopy(model).eval(), DENSE, alpha=2, bias=0.05)
    hsr = use_relu_attention(copy.deepcopy(model).eval(), HSR, alpha=2, bias=0.05)
    return dense, hsr, tok


def test_model_under_test_has_grouped_query_attention(tiny_lm):
    cfg = tiny_lm[0].config
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # the GQA path is exercised below


def test_repeated_generate_calls_match_dense_relu_in_any_order(models):
    """Several prompts in a row through one switched model: longer after shorter, shorter after longer,
    a repeat; each call's tokens and logits equal the dense ReLU^alpha reference."""
    dense, hsr, tok = models
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        ref_tokens, ref_logits = _generate(dense, ids)
        tokens, logits = _generate(hsr, ids)
        assert torch.equal(tokens, ref_tokens), prompt
        torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4)
    counts = work_counts(hsr)
    assert 0 < counts["reported"] <= counts["scored"]


def test_batch_of_two_prompts_same_and_padded_lengths(models):
    dense, hsr, tok = models
    tok = copy.deepcopy(tok)
    tok.padding_side = "left"
    for pair in (["def f(x):", "import os"], ["x =", "class Parser:\n    def parse(self):"]):
        enc = tok(pair, return_tensors="pt", padding=True)
        ref = _generate(dense, enc["input_ids"], enc["attention_mask"])
        got = _generate(hsr, enc["input_ids"], enc["attention_mask"])
        assert torch.equal(got[0], ref[0]), pair
        torch.testing.assert_close(got[1], ref[1], rtol=1e-4, atol=1e-4)


def test_caches_belong_to_their_model(tiny_lm):
    """Two switched models with different settings, used in turns, each match their own dense reference."""
    model, tok = tiny_lm
    ids = [tok(p, return_tensors="pt")["input_ids"] for p in PROMPTS[:3]]
    pairs = []
    for bias in (0.0, 0.1):
        pairs.append((use_relu_attention(copy.deepcopy(model).eval(), DENSE, alpha=1, bias=bias),
                      use_relu_attention(copy.deepcopy(model).eval(), HSR, alpha=1, bias=bias)))
    for x in ids:
        for dense, hsr in pairs:
            torch.testing.assert_close(_generate(hsr, x, new=3)[1], _generate(dense, x, new=3)[1], rtol=1e-4, atol=1e-4)


def test_a_stale_cache_is_never_reused(models):
    """Regression: the old cache reused the previous prompt's keys when the next one was not longer."""
    dense, hsr, tok = models
    a, b = (tok(p, return_tensors="pt")["input_ids"] for p in ("class Parser:", "import os.path"))
    n = min(a.shape[1], b.shape[1])
    a, b = a[:, :n], b[:, :n]
    with torch.no_grad():
        hsr(a)  # fills the caches with a's keys
        got = hsr(b).logits  # same length, different tokens: must not reuse a's keys
        ref = dense(b).logits
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_sync_rebuilds_when_the_past_keys_are_not_the_cached_ones():
    """A decoding step (one new query) whose past keys differ from the cached ones, at the same length,
    rebuilds the cache from the keys it is given instead of appending to the wrong history."""
    from tenfold.hsr.cache import ReluAttentionState

    g = torch.Generator().manual_seed(0)
    state = ReluAttentionState()
    ka, va = torch.randn(1, 2, 5, 4, generator=g), torch.randn(1, 2, 5, 3, generator=g)
    state.sync(ka, va, qlen=5, scaling=0.5)
    kb, vb = torch.randn(1, 2, 6, 4, generator=g), torch.randn(1, 2, 6, 3, generator=g)
    state.sync(kb, vb, qlen=1, scaling=0.5)  # 5 past keys, as cached, but not a's
    for kh in range(2):
        assert torch.equal(state.caches[0][kh].index.keys, kb[0, kh])
        assert torch.equal(state.caches[0][kh].values, vb[0, kh])
    kc = torch.cat([kb, torch.randn(1, 2, 1, 4, generator=g)], 2)
    state.sync(kc, torch.cat([vb, vb[:, :, :1]], 2), qlen=1, scaling=0.5)  # the true continuation: appended
    assert len(state.caches[0][0]) == 7 and torch.equal(state.caches[0][0].index.keys, kc[0, 0])


def test_non_llama_models_are_refused_with_the_supported_families():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=16))
    with pytest.raises(UnsupportedError, match="llama"):
        use_relu_attention(gpt2, HSR)
