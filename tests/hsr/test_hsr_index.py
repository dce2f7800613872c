"""The index is exact (brute-force reference), including adversarial key sets; attention matches dense."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.hsr import HalfSpaceIndex, HSRKVCache, relu_attention, softmax_attention_topr
from tenfold.hsr.baselines import BlockBound, dense_relu, dense_softmax


def brute(K, q, b):
    return torch.nonzero(K @ q > b).flatten()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), d=st.integers(1, 6), leaf=st.sampled_from([1, 2, 8, 64]), seed=st.integers(0, 10**6),
       kind=st.sampled_from(["gauss", "duplicates", "integer_boundary", "collinear"]))
def test_index_reports_exactly_the_half_space(n, d, leaf, seed, kind):
    g = torch.Generator().manual_seed(seed)
    if kind == "gauss":
        K = torch.randn(n, d, generator=g, dtype=torch.float64)
    elif kind == "duplicates":
        K = torch.randn(max(1, n // 10), d, generator=g, dtype=torch.float64).repeat(11, 1)[:n]
    elif kind == "integer_boundary":  # integer keys and query: many keys exactly on <q, k> = b
        K = torch.randint(-3, 4, (n, d), generator=g).double()
    else:  # collinear keys along one direction
        K = torch.randn(n, 1, generator=g, dtype=torch.float64) * torch.randn(1, d, generator=g, dtype=torch.float64)
    index = HalfSpaceIndex(K, leaf_size=leaf)
    for _ in range(5):
        if kind == "integer_boundary":
            q, b = torch.randint(-2, 3, (d,), generator=g).double(), float(torch.randint(-3, 4, (1,), generator=g))
        else:
            q, b = torch.randn(d, generator=g, dtype=torch.float64), float(torch.randn(1, generator=g))
        assert torch.equal(index.query(q, b), brute(K, q, b))


def test_appends_keep_the_index_exact():
    g = torch.Generator().manual_seed(0)
    index = HalfSpaceIndex(torch.randn(5, 4, generator=g), leaf_size=4, buffer_size=8)
    K = index.keys.clone()
    for step in range(60):
        new = torch.randn(1 + step % 5, 4, generator=g)
        ids = index.append(new)
        assert ids.tolist() == list(range(len(K), len(K) + len(new)))
        K = torch.cat([K, new])
        q = torch.randn(4, generator=g)
        assert torch.equal(index.query(q, 0.3), brute(K, q, 0.3))
    assert torch.equal(index.keys, K)
    assert torch.equal(index.keys_at(torch.tensor([0, 7, len(K) - 1])), K[[0, 7, len(K) - 1]])
    assert len(index.trees) <= math.ceil(math.log2(len(K))) + 1  # logarithmic method


@pytest.mark.parametrize("alpha", [1, 2, 3])
def test_relu_attention_with_index_matches_dense_float64(alpha):
    g = torch.Generator().manual_seed(alpha)
    K, V = torch.randn(2000, 16, generator=g, dtype=torch.float64), torch.randn(2000, 8, generator=g, dtype=torch.float64)
    Q = torch.randn(6, 16, generator=g, dtype=torch.float64)
    dense = torch.stack([dense_relu(q, K, V, alpha, 0.4) for q in Q])  # independent baseline implementation
    out, stats = relu_attention(Q, K, V, alpha, 0.4, index=True, return_stats=True)
    torch.testing.assert_close(out, dense, rtol=1e-12, atol=1e-12)
    assert stats.touched_fraction < 0.5 and not stats.dense_fallback
    torch.testing.assert_close(BlockBound(K).relu(Q[0], V, alpha, 0.4), dense[0], rtol=1e-12, atol=1e-12)


def test_very_low_bias_falls_back_to_dense_and_says_so():
    K, V = torch.randn(300, 8), torch.randn(300, 4)
    q = torch.randn(8)
    out, stats = relu_attention(q, K, V, 1, -1e6, index=True, return_stats=True)
    assert stats.dense_fallback
    torch.testing.assert_close(out, dense_relu(q, K, V, 1, -1e6))


def test_topr_softmax_error_is_within_its_bound():
    g = torch.Generator().manual_seed(0)
    K, V = torch.randn(3000, 16, generator=g, dtype=torch.float64) * 2, torch.randn(3000, 8, generator=g, dtype=torch.float64)
    q = torch.randn(16, generator=g, dtype=torch.float64) * 2
    dense = dense_softmax(q, K, V)
    for kw in ({"r": 50}, {"r": 500}, {"threshold": 1.0}):
        for index in (None, True):
            res = softmax_attention_topr(q, K, V, index=index, **kw)
            assert (res.out - dense).abs().max() <= res.bound + 1e-12
    assert (softmax_attention_topr(q, K, V, r=3000).out - dense).abs().max() < 1e-12


def test_kv_cache_decoding_matches_dense_step_by_step():
    g = torch.Generator().manual_seed(1)
    cache = HSRKVCache(8, alpha=2, bias=0.1)
    K, V = torch.zeros(0, 8), torch.zeros(0, 4)
    for _ in range(40):
        k, v, q = torch.randn(1, 8, generator=g), torch.randn(1, 4, generator=g), torch.randn(8, generator=g)
        cache.append(k, v)
        K, V = torch.cat([K, k]), torch.cat([V, v])
        torch.testing.assert_close(cache.attend(q), dense_relu(q, K, V, 2, 0.1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["empty", "dim", "nan", "inf_query", "alpha", "half"])
def test_bad_inputs_raise_clear_errors(case):
    K, V, q = torch.randn(10, 4), torch.randn(10, 4), torch.randn(4)
    with pytest.raises(InputError):
        if case == "empty":
            relu_attention(q, K[:0], V[:0])
        elif case == "dim":
            relu_attention(torch.randn(5), K, V)
        elif case == "nan":
            HalfSpaceIndex(torch.full((3, 4), float("nan")))
        elif case == "inf_query":
            HalfSpaceIndex(K).query(torch.full((4,), float("inf")), 0.0)
        elif case == "alpha":
            relu_attention(q, K, V, alpha=0.5)
        else:
            relu_attention(q.half(), K.half(), V.half())
