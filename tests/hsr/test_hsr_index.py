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
    assert len(index.trees) <= math.ceil(math.log2(len(K))) + 1  # logarithmic method


@pytest.mark.parametrize("alpha", [1, 2, 3])
def test_relu_attention_with_index_matches_dense_float64(alpha):
    g = torch.Generator().manual_seed(alpha)
    K = torch.randn(2000, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 16, generator=g, dtype=torch.float64)
    V = torch.randn(2000, 8, generator=g, dtype=torch.float64)
    Q = torch.randn(6, 16, generator=g, dtype=torch.float64)
    dense = torch.stack([dense_relu(q, K, V, alpha, 0.4) for q in Q])  # independent baseline implementation
    out, stats = relu_attention(Q, K, V, alpha, 0.4, index=True, return_stats=True)
    torch.testing.assert_close(out, dense, rtol=1e-12, atol=1e-12)
    assert stats.scored_fraction - stats.reported_fraction < 0.2 and not stats.dense_fallback  # few wasted dots
    assert stats.reported == [int(c) for c in ((Q @ K.T) / 4 > 0.4).sum(1)]  # low-rank keys: the tree prunes
    assert all(r <= s for r, s in zip(stats.reported, stats.scored, strict=True))
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


def _exact_sets_agree(index, K, q, b):
    """The index's set equals brute force `K @ q > b`, except keys whose exact (float64) score lies within
    the float round-off of the boundary, where two summation orders may disagree; reported keys all
    have computed scores above b; no key certainly above b is missed."""
    ids, scores = index.report(q, b)
    got = set(ids.tolist())
    brute = set(torch.nonzero(K @ q > b).flatten().tolist())
    exact = K.double() @ q.double()
    eps = torch.finfo(K.dtype).eps
    zone = 2 * K.shape[1] * eps * (K.double().abs() @ q.double().abs()) + 1e-300
    near = set(torch.nonzero((exact - b).abs() <= zone).flatten().tolist())
    assert got ^ brute <= near
    assert set(torch.nonzero(exact > b + zone).flatten().tolist()) <= got  # nothing certainly above b missed
    assert bool((scores > b).all())
    assert index.last_stats.reported == len(ids) <= index.last_stats.scored < 2 * len(K)  # the tree's padding rows count


KINDS = ["gauss", "large_mean", "duplicates", "integer_boundary", "huge_scale", "low_rank"]


def _keys(kind, n, d, g, dtype):
    if kind == "gauss":
        return torch.randn(n, d, generator=g, dtype=dtype)
    if kind == "large_mean":  # real caches: a big shared offset, small spread (cancellation in <q, k>)
        return (1e3 + torch.randn(n, d, generator=g, dtype=torch.float64)).to(dtype)
    if kind == "duplicates":
        return torch.randn(max(1, n // 10), d, generator=g, dtype=dtype).repeat(n, 1)[:n]
    if kind == "integer_boundary":
        return torch.randint(-3, 4, (n, d), generator=g).to(dtype)
    if kind == "huge_scale":
        return torch.randn(n, d, generator=g, dtype=dtype) * 1e15
    return torch.randn(n, 2, generator=g, dtype=dtype) @ torch.randn(2, d, generator=g, dtype=dtype)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), d=st.integers(1, 12), rank=st.integers(1, 12), block=st.sampled_from([1, 3, 16, 64]),
       seed=st.integers(0, 10**6), kind=st.sampled_from(KINDS), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_lowrank_block_index_misses_no_key_above_the_threshold(n, d, rank, block, seed, kind, dtype):
    from tenfold.hsr.lowrank import LowRankBlockIndex

    g = torch.Generator().manual_seed(seed)
    K = _keys(kind, n, d, g, dtype)
    split = int(torch.randint(0, n + 1, (1,), generator=g))  # built on a prefix, the rest appended
    index = LowRankBlockIndex(K[: max(1, split)], rank=min(rank, d), block=block)
    index.append(K[max(1, split):])
    assert torch.equal(index.keys, K)
    for _ in range(4):
        q = torch.randint(-2, 3, (d,), generator=g).to(dtype) if kind == "integer_boundary" else \
            torch.randn(d, generator=g, dtype=dtype)
        i = int(torch.randint(0, n, (1,), generator=g))
        for b in (float(K[i] @ q), float(torch.randn(1, generator=g)) * float(K.abs().max() * q.abs().sum())):
            _exact_sets_agree(index, K, q, b)  # b equal to a key's own score: that key sits on the boundary


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), d=st.integers(1, 8), leaf=st.sampled_from([1, 4, 64]), seed=st.integers(0, 10**6),
       kind=st.sampled_from(KINDS), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_tree_and_block_bound_miss_no_key_above_the_threshold_with_roundoff(n, d, leaf, seed, kind, dtype):
    g = torch.Generator().manual_seed(seed)
    K = _keys(kind, n, d, g, dtype)
    for index in (HalfSpaceIndex(K, leaf_size=leaf), BlockBound(K, block=16)):
        for _ in range(3):
            q = torch.randn(d, generator=g, dtype=dtype)
            i = int(torch.randint(0, n, (1,), generator=g))
            _exact_sets_agree(index, K, q, float(K[i] @ q))


def test_lowrank_index_prunes_low_rank_keys_and_attention_matches_dense():
    from tenfold.hsr.lowrank import LowRankBlockIndex

    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 6.28, 4096, dtype=torch.float64)[:, None]
    K = torch.cat([torch.cos(t * torch.arange(1, 5)), torch.sin(t * torch.arange(1, 5))], 1)  # smooth in sequence
    K = K @ torch.randn(8, 32, generator=g, dtype=torch.float64)
    V = torch.randn(4096, 8, generator=g, dtype=torch.float64)
    index = LowRankBlockIndex(K, rank=8, block=32)
    q = torch.randn(32, generator=g, dtype=torch.float64)
    s = K @ q / math.sqrt(32)
    b = float(s.quantile(0.95))
    out, stats = relu_attention(q, K, V, 2, b, index=index, return_stats=True)
    torch.testing.assert_close(out, dense_relu(q, K, V, 2, b), rtol=1e-12, atol=1e-12)
    assert stats.scored_fraction < 0.3  # contiguous blocks of a smooth sequence are skipped


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), d=st.integers(1, 64), seed=st.integers(0, 10**6), kind=st.sampled_from(KINDS))
def test_block_bounds_plus_margin_dominate_every_float32_evaluation_of_a_score(n, d, seed, kind):
    """The pruning rule's contract: bound + margin >= the float32 score of every key of the block, however
    the dot product is summed (matmul, forward, reversed), so no pruned key can score above b."""
    from tenfold.hsr.index import roundoff_margin
    from tenfold.hsr.lowrank import LowRankBlockIndex

    g = torch.Generator().manual_seed(seed)
    K = _keys(kind, n, d, g, torch.float32)
    q = torch.randn(d, generator=g) * torch.rand(d, generator=g) ** 4  # entries of very different sizes
    prods = K * q
    forward = torch.zeros(n)
    for i in range(d):
        forward = forward + prods[:, i]
    backward = torch.zeros(n)
    for i in reversed(range(d)):
        backward = backward + prods[:, i]
    evaluations = torch.stack([K @ q, forward, backward, prods.sum(1)]).double().amax(0)
    # block 1 and full rank make the bound tight (the exact score), so only the margin covers round-off
    for index, block in ((LowRankBlockIndex(K, rank=d, block=1), 1), (LowRankBlockIndex(K, rank=max(1, d // 4), block=8), 8),
                         (BlockBound(K, block=1), 1), (BlockBound(K, block=8), 8)):
        margin = roundoff_margin(q.double(), 0.0, torch.float32, float(K.abs().max()), float(K.double().norm(dim=1).max()),
                                 getattr(index, "defect", 0.0))
        upper = index.upper_bounds(q.double()) + margin
        pad = (-n) % block
        worst = torch.cat([evaluations, evaluations[-1:].expand(pad)]).view(-1, block).amax(1)
        assert bool((upper >= worst).all()), float((worst - upper).max())
