"""The link split has no leakage; clustering accuracy uses the best matching; topic match is a cosine."""

from __future__ import annotations

import numpy as np
import pytest

from tenfold.core.errors import InputError
from tenfold.wgae.evaluate import cluster_accuracy, random_topic_match, split_links, topic_match


def _keys(a, n):
    return set((a[0] * n + a[1]).tolist())


def test_link_split_has_no_leakage_and_the_requested_sizes(small_net):
    net, n = small_net, small_net.n_nodes
    s = split_links(net, 0.05, 0.10, seed=1)
    e = net.n_edges
    assert s.test_pos.shape[1] == int(e * 0.10) and s.val_pos.shape[1] == int(e * 0.05)
    train, val, test = _keys(s.train, n), _keys(s.val_pos, n), _keys(s.test_pos, n)
    assert not (train & test) and not (train & val) and not (val & test)
    assert len(train) + len(val) + len(test) == e
    allpos = _keys(net.edges, n)
    vneg, tneg = _keys(s.val_neg, n), _keys(s.test_neg, n)
    assert not (vneg & allpos) and not (tneg & allpos) and not (vneg & tneg)
    assert len(tneg) == s.test_neg.shape[1] == s.test_pos.shape[1]
    for a in (s.val_neg, s.test_neg):
        assert (a[0] < a[1]).all()


def test_link_split_rejects_bad_fractions(small_net):
    with pytest.raises(InputError, match="fractions"):
        split_links(small_net, 0.5, 0.6)


def test_cluster_accuracy_is_invariant_to_relabelling():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_accuracy(labels, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    assert cluster_accuracy(labels, np.array([1, 1, 1, 0, 2, 2])) == pytest.approx(5 / 6)


def test_topic_match_is_one_for_permuted_topics_and_lower_otherwise():
    rng = np.random.default_rng(0)
    phi = rng.dirichlet(np.ones(20) * 0.1, 4).T
    assert topic_match(phi[:, [2, 0, 3, 1]], phi) == pytest.approx(1.0)
    assert topic_match(rng.dirichlet(np.ones(20) * 0.1, 4).T, phi) < 0.9


def test_unigram_topic_match_is_the_mean_cosine_with_the_word_frequencies():
    from tenfold.data.planetoid import build_network
    from tenfold.wgae.evaluate import unigram_topic_match

    counts = np.array([[3, 0, 1], [1, 0, 0], [0, 2, 1]])  # word totals 4, 2, 2
    net = build_network(counts, np.array([[0, 1]]))
    true = np.array([[1.0, 0.0], [0.0, 0.5], [0.0, 0.5]])
    f = np.array([4.0, 2.0, 2.0]) / np.sqrt(24.0)
    expected = (f[0] + (f[1] + f[2]) / np.sqrt(2.0)) / 2
    assert np.isclose(unigram_topic_match(net, true), expected)


def test_trivial_topic_sets_untrained_init_and_unigram_beat_prior_draws():
    from tenfold.data.docgraph import sample_dcsbm_lda
    from tenfold.wgae.evaluate import unigram_topic_match
    from tenfold.wgae.experiment import PROFILES, _untrained_phi

    net = sample_dcsbm_lda(60, 40, 3, 4, 30.0, 6.0, seed=1)
    true = net.truth["phi"][0]
    untrained = _untrained_phi(net, PROFILES["smoke"], 8, "wgcae", 0)
    assert untrained.shape == (40, 8) and np.allclose(untrained.sum(0), 1.0)
    # a words-only unigram "model" is far above random sparse prior draws: the reason it is in the reference
    assert unigram_topic_match(net, true) > random_topic_match(true, 8, 0.01, 0)


def test_autoencoder_scores_keep_their_order_where_a_float32_sigmoid_saturates():
    """GAE/VGAE rank pairs by z_i . z_j; sigmoid of it in float32 is exactly 1 above ~17 and ties such pairs,
    which would cost the baseline AUC that its embedding earned (the GPGBN models score the rate for the
    same reason)."""
    import torch

    from tenfold.wgae.baselines import _inner_product_scorer

    z = torch.tensor([[5.0, 0.0], [4.0, 0.0], [5.0, 0.0], [0.0, 1.0]])
    scores = _inner_product_scorer(z)(np.array([[0, 0, 0], [1, 2, 3]]))  # products 20, 25, 0
    assert scores[1] > scores[0] > scores[2]
