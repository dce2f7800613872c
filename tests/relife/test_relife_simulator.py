"""The click simulator's click rates follow its parameters (eta, stop, beta)."""

from __future__ import annotations

import numpy as np
import pytest

from tenfold.core.errors import InputError
from tenfold.data.lists import ClickModel


def test_beta_zero_removes_the_comparison_effect():
    r = np.random.default_rng(0).uniform(0.05, 0.95, (50, 10))
    mask = np.ones_like(r, dtype=bool)
    assert np.allclose(ClickModel(beta=0.0).comparison(r, mask), r)


def test_comparison_lifts_above_mean_items_and_lowers_below_mean_items():
    r = np.array([[0.9, 0.5, 0.1]])
    rp = ClickModel(beta=2.0).comparison(r, np.ones_like(r, dtype=bool))
    assert rp[0, 0] > 0.9 and rp[0, 2] < 0.1
    # r' = sigmoid(logit r + beta (r - mean of the others)), worked by hand for the first item
    expected = 1 / (1 + np.exp(-(np.log(0.9 / 0.1) + 2.0 * (0.9 - 0.3))))
    assert np.isclose(rp[0, 0], expected)


def test_pbm_click_rates_decay_as_one_over_position_to_the_eta():
    r = np.full((1, 6), 0.5)
    mask = np.ones_like(r, dtype=bool)
    for eta in (0.5, 1.0, 2.0):
        p = ClickModel(eta=eta, stop=0.0).click_probabilities(r, mask)[0]
        assert np.allclose(p / p[0], (1.0 / np.arange(1, 7)) ** eta)


def test_sampled_clicks_match_the_exact_click_probabilities():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.1, 0.9, (1, 8))
    r = np.repeat(base, 40000, axis=0)
    mask = np.ones_like(r, dtype=bool)
    model = ClickModel(eta=1.0, stop=0.6, beta=0.5)
    clicks = model.sample(r, mask, np.random.default_rng(2))
    exact = model.click_probabilities(base, mask[:1])[0]
    sigma = np.sqrt(exact * (1 - exact) / len(r))
    assert np.all(np.abs(clicks.mean(0) - exact) < 5 * sigma + 1e-9)
    assert np.isclose(clicks.sum(1).mean(), model.expected_clicks(base, mask[:1])[0], atol=0.02)


def test_cascade_with_certain_stop_gives_at_most_one_click():
    r = np.full((2000, 10), 0.8)
    clicks = ClickModel(eta=0.0, stop=1.0).sample(r, np.ones_like(r, dtype=bool), np.random.default_rng(0))
    assert clicks.sum(1).max() == 1
    assert np.isclose(clicks[:, 0].mean(), 0.8, atol=0.03)


def test_padded_positions_are_never_clicked():
    r = np.full((500, 5), 0.9)
    mask = np.zeros_like(r, dtype=bool)
    mask[:, :3] = True
    model = ClickModel(eta=0.0, stop=0.0)
    assert model.sample(r, mask, np.random.default_rng(0))[:, 3:].sum() == 0
    assert np.all(model.click_probabilities(r, mask)[:, 3:] == 0)


def test_bad_click_parameters_are_rejected():
    with pytest.raises(InputError, match="stop"):
        ClickModel(stop=1.5)
    with pytest.raises(InputError, match="eta"):
        ClickModel(eta=-1)
