"""The Weibull sampler's moments and the analytic Weibull-Gamma KL against float64 Monte Carlo."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.wgae.weibull import kl_weibull_gamma, weibull_mean, weibull_rsample


def test_weibull_rsample_matches_closed_form_mean_and_variance():
    gen = torch.Generator().manual_seed(0)
    for k, lam in ((0.5, 2.0), (1.0, 1.0), (3.0, 0.5), (20.0, 4.0)):
        kt, lt = torch.tensor(k, dtype=torch.float64), torch.tensor(lam, dtype=torch.float64)
        x = weibull_rsample(kt, lt, 400_000, gen)
        mean = lam * math.gamma(1 + 1 / k)
        var = lam**2 * (math.gamma(1 + 2 / k) - math.gamma(1 + 1 / k) ** 2)
        assert abs(float(x.mean()) - mean) < 5 * math.sqrt(var / 400_000)
        assert abs(float(x.var()) / var - 1) < 0.06
        assert abs(float(weibull_mean(kt, lt)) - mean) < 1e-12


def test_weibull_rsample_is_reparameterised_gradient_of_mean():
    gen = torch.Generator().manual_seed(1)
    k = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    lam = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    weibull_rsample(k, lam, 200_000, gen).mean().backward()
    assert abs(float(lam.grad) - math.gamma(1.5)) < 0.01  # d/dlam of lam * Gamma(1 + 1/k)


@settings(max_examples=12, deadline=None)
@given(k=st.floats(0.6, 6.0), lam=st.floats(0.2, 5.0), alpha=st.floats(0.3, 5.0), beta=st.floats(0.2, 4.0))
def test_kl_weibull_gamma_matches_monte_carlo(k, lam, alpha, beta):
    kt, lt = torch.tensor(k, dtype=torch.float64), torch.tensor(lam, dtype=torch.float64)
    at, bt = torch.tensor(alpha, dtype=torch.float64), torch.tensor(beta, dtype=torch.float64)
    x = weibull_rsample(kt, lt, 200_000, torch.Generator().manual_seed(2))
    log_q = torch.distributions.Weibull(lt, kt).log_prob(x)
    log_p = torch.distributions.Gamma(at, bt).log_prob(x)
    diff = log_q - log_p
    mc, se = float(diff.mean()), float(diff.std()) / math.sqrt(len(diff))
    assert abs(float(kl_weibull_gamma(kt, lt, at, bt)) - mc) < 5 * se + 1e-3
    assert float(kl_weibull_gamma(kt, lt, at, bt)) > -1e-9  # a KL is never negative
