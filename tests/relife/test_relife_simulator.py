"""The click simulator: substitution against a float64 loop, exact click marginals and likelihoods,
unbiased IPS targets, the oracle, and the headroom an oracle that knows beta_u has on the simulator."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.data.lists import (
    HIDDEN,
    ClickModel,
    ListConfig,
    SimulatorConfig,
    build_simulated_lists,
    greedy_order,
    posterior_beta,
    substitution_intent,
)
from tenfold.data.movielens import load_atomic
from tenfold.relife.experiment import user_bootstrap
from tenfold.relife.metrics import evaluation_uniforms, simulated_metrics


def _substitution_reference(r, cats, beta):
    """One list, float64, the definition written out: logit r' = logit r - beta * max same-genre r above."""
    out = []
    for j in range(len(r)):
        above = max([r[i] for i in range(j) if cats[i] == cats[j]], default=0.0)
        out.append(1 / (1 + math.exp(-(math.log(r[j] / (1 - r[j])) - beta * above))))
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.02, 0.98), st.integers(2, 4)), min_size=1, max_size=7), st.floats(0, 6))
def test_substitution_matches_the_definition_written_as_a_loop(rows, beta):
    r = np.array([[x for x, _ in rows]])
    cats = np.array([[c for _, c in rows]])
    got = substitution_intent(r, cats, np.ones_like(r, dtype=bool), np.array([beta]))[0]
    assert np.allclose(got, _substitution_reference(r[0], cats[0], beta), atol=1e-9)
    assert np.all(got <= r[0] + 1e-12)


def test_beta_zero_removes_the_context_effect_and_padding_scores_zero():
    r = np.array([[0.9, 0.8, 0.3, 0.5]])
    cats = np.array([[2, 2, 3, 0]])
    mask = np.array([[True, True, True, False]])
    assert np.allclose(substitution_intent(r, cats, mask, np.zeros(1)), [[0.9, 0.8, 0.3, 0.0]])


def test_the_effect_changes_the_best_order_and_the_oracle_finds_it():
    # two strong dramas and a weaker comedy: for a substituting user the comedy belongs second
    r = np.array([[0.9, 0.85, 0.6]])
    cats = np.array([[2, 2, 3]])
    mask = np.ones_like(r, dtype=bool)
    assert greedy_order(r, cats, mask, np.zeros(1)).tolist() == [[0, 1, 2]]
    assert greedy_order(r, cats, mask, np.full(1, 4.0)).tolist() == [[0, 2, 1]]
    disc = 1 / np.log2(np.arange(2, 5))
    value = lambda order, b: (substitution_intent(r[:, order], cats[:, order], mask, np.full(1, b))[0] * disc).sum()  # noqa: E731
    assert value([0, 2, 1], 4.0) > value([0, 1, 2], 4.0)
    assert value([0, 1, 2], 0.0) > value([0, 2, 1], 0.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0, 5))
def test_greedy_order_is_a_permutation_with_padding_last(seed, beta):
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.05, 0.95, (3, 6))
    cats = rng.integers(2, 5, (3, 6))
    mask = np.arange(6) < rng.integers(1, 7, (3, 1))
    order = greedy_order(r, cats, mask, np.full(3, beta))
    assert all(sorted(row) == list(range(6)) for row in order.tolist())
    assert np.all(np.take_along_axis(mask, order, 1) == (np.arange(6) < mask.sum(1, keepdims=True)))


def _all_click_vectors(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def test_likelihood_sums_to_one_and_marginals_match_it_exactly():
    click = ClickModel(eta=0.7, stop=0.4)
    intent = np.array([0.8, 0.3, 0.6, 0.5])
    vectors = _all_click_vectors(4)
    n = len(vectors)
    mask = np.ones((n, 4), dtype=bool)
    p = np.exp(click.log_likelihood(np.tile(intent, (n, 1)), vectors, mask))
    assert math.isclose(p.sum(), 1.0, abs_tol=1e-12)
    marginal = click.click_probabilities(intent[None], mask[:1])[0]
    assert np.allclose((p[:, None] * vectors).sum(0), marginal, atol=1e-12)


def test_sampled_clicks_match_the_exact_marginals_and_ips_targets_are_unbiased():
    click = ClickModel(eta=1.0, stop=0.5)
    rng = np.random.default_rng(0)
    n = 200_000
    intent = np.tile([0.7, 0.4, 0.9, 0.2, 0.6], (n, 1))
    mask = np.ones_like(intent, dtype=bool)
    clicks = click.sample(intent, mask, rng.random(intent.shape), rng.random(intent.shape), rng.random(intent.shape))
    assert np.allclose(clicks.mean(0), click.click_probabilities(intent[:1], mask[:1])[0], atol=4e-3)
    ips = clicks / click.propensity(clicks, mask)
    assert np.allclose(ips.mean(0), intent[0], atol=0.03)  # c / p is unbiased for the intent r'
    assert not np.allclose(clicks.mean(0), intent[0], atol=0.05)  # raw clicks are not (the position trap)


def test_bad_click_and_simulator_settings_are_rejected():
    with pytest.raises(InputError, match="eta"):
        ClickModel(eta=-1)
    with pytest.raises(InputError, match="stop"):
        ClickModel(stop=1.5)
    with pytest.raises(InputError, match="lists_per_user"):
        SimulatorConfig(lists_per_user=3, test_lists=2)
    with pytest.raises(InputError, match="beta"):
        SimulatorConfig(beta=float("nan"))


CFG = ListConfig(list_len=5, history_lists=2, ranker_epochs=5)


@pytest.fixture(scope="module")
def simulated(toy_atomic):
    return build_simulated_lists(load_atomic(toy_atomic), CFG, SimulatorConfig(lists_per_user=6, test_lists=2, beta=3.0,
                                                                               ranker_noise=0.5, seed=3))


def test_simulated_lists_are_seeded_and_beta_is_a_trait_of_the_user(toy_atomic, simulated):
    again = build_simulated_lists(load_atomic(toy_atomic), CFG, SimulatorConfig(lists_per_user=6, test_lists=2, beta=3.0,
                                                                                ranker_noise=0.5, seed=3))
    assert np.array_equal(again.train.labels, simulated.train.labels)
    everyone = np.concatenate([simulated.train.user, simulated.val.user, simulated.test.user])
    betas = np.concatenate([simulated.train.beta, simulated.val.beta, simulated.test.beta])
    for u in np.unique(everyone):
        assert len(set(betas[everyone == u].tolist())) == 1  # the same beta_u in every list of a user
    assert set(np.unique(betas).tolist()) <= {0.0, 6.0}
    assert (len(simulated.train), len(simulated.val), len(simulated.test)) == (8 * 3, 8, 16)


def test_a_model_batch_carries_no_hidden_simulator_field(simulated):
    batch = simulated.train.batch(np.arange(3), simulated.train.intent)
    assert not set(HIDDEN) & set(batch) and "labels" not in batch and "target" in batch


def test_posterior_is_the_prior_mean_without_history_and_follows_the_evidence():
    click = ClickModel()
    r = np.full((3, 4), 0.8)
    cats = np.full((3, 4), 2)
    mask = np.ones((3, 4), dtype=bool)
    clicks = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    post = posterior_beta(click, r, cats, mask, clicks, np.array([0, 0, 0]), history=2, beta_high=4.0)
    assert math.isclose(post[0], 2.0)  # no earlier list: the prior mean
    assert post[1] < 2.0 and post[2] < post[1]  # clicking every same-genre item speaks for beta_u = 0


def _headroom(splits, draws=8):
    t = splits.test
    u = evaluation_uniforms(t.mask.shape, draws, 0)
    r = t.relevance.astype(float)
    run = lambda b: simulated_metrics(t.relevance, t.cats, t.mask, t.beta, ClickModel(), greedy_order(r, t.cats, t.mask, b), u)["ndcg@5"]  # noqa: E731
    return run(t.beta), run(np.full(len(t), t.meta["beta_mean"]))


def test_an_oracle_that_knows_beta_u_gains_ndcg_over_one_that_knows_only_the_mean():
    """The headroom the comparison module can win, on the documented simulator (ML-100K, quick profile's beta)."""
    from tenfold.data.movielens import recbole_ml100k_dir
    from tenfold.relife.experiment import PROFILES

    if recbole_ml100k_dir() is None:
        pytest.skip("MovieLens-100K needs the recbole package")
    p = PROFILES["quick"]
    sim = build_simulated_lists(load_atomic("ml-100k"), ListConfig(history_lists=2, ranker_epochs=30, max_users=300),
                                SimulatorConfig(lists_per_user=6, test_lists=3, beta=p.beta, ranker_noise=p.ranker_noise))
    knows, mean = _headroom(sim)
    interval = user_bootstrap(knows, sim.test.user, mean)  # 3 test lists per user: resample users
    assert interval.lo > 0.005, interval


def test_negative_control_without_substitution_there_is_no_headroom(toy_atomic):
    sim = build_simulated_lists(load_atomic(toy_atomic), ListConfig(list_len=10, history_lists=2, ranker_epochs=5),
                                SimulatorConfig(lists_per_user=30, test_lists=25, beta=0.0, ranker_noise=0.5))
    knows, mean = _headroom(sim)
    assert np.array_equal(knows, mean)
