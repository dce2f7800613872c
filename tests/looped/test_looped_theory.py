"""The rate predictions against closed forms, and the measured slopes against them in float64."""

from __future__ import annotations

import math

import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.looped import (
    Prompts,
    TaskConfig,
    gd_construction,
    gd_rate,
    log_error_slope,
    paper_rate,
    prompt_hessians,
    sample_prompts,
    theory_step_size,
)
from tenfold.looped.sweeps import parameter_errors, rate_in_T
from tenfold.looped.tasks import random_covariance_roots


def test_slope_of_an_exact_geometric_sequence_is_its_log_ratio():
    Ts = torch.arange(10, 31)
    errors = torch.stack([0.3 * 0.9 ** Ts.double(), 2.0 * 0.5 ** Ts.double()])
    assert torch.allclose(log_error_slope(errors, Ts), torch.tensor([math.log(0.9), math.log(0.5)], dtype=torch.float64))


def test_slope_fits_only_the_masked_window_and_is_undefined_with_one_point():
    Ts = torch.arange(1, 11)
    errors = torch.stack([0.5 ** Ts.double(), 0.9 ** Ts.double()]).clone()
    errors[0, 6:] = 1e-16  # a float64 floor after the sixth loop must not flatten the fit
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 6:] = False
    mask[1] = Ts == 4
    slopes = log_error_slope(errors, Ts, mask)
    assert slopes[0].item() == pytest.approx(math.log(0.5)) and math.isnan(slopes[1].item())


def test_rate_window_stops_where_the_error_reaches_round_off():
    task = TaskConfig(d=2, n=40, kappa=1.0)
    p = sample_prompts(5, task, seed=0)
    eta = 1.0 / float(torch.linalg.eigvalsh(prompt_hessians(p)).max())  # fast: the floor comes within ~60 loops
    r = rate_in_T(gd_construction(2, 1, eta), p, 300, eta)
    assert (r["window_end"] < 300).all() and torch.allclose(r["slope"], r["gd"], rtol=0.05)


def test_one_dimensional_gd_error_is_exactly_geometric_at_the_predicted_rate():
    X = torch.tensor([[[1.0], [2.0], [-1.0]]], dtype=torch.float64)  # H = (1 + 4 + 1) / 3 = 2
    p = Prompts(X, 3 * X, torch.ones(1, 1, dtype=torch.float64))
    eta = 0.2  # |1 - 0.2 * 2| = 0.6 per step
    errors = parameter_errors(gd_construction(1, 1, eta), p, 12)
    assert torch.allclose(errors[0], 0.6 ** torch.arange(1, 13, dtype=torch.float64), atol=1e-14)
    assert gd_rate(p, eta).item() == pytest.approx(math.log(0.6))
    assert paper_rate(p).item() == pytest.approx(-0.5)  # kappa = 1


def test_paper_rate_and_gd_rate_use_each_prompts_own_spectrum():
    p = sample_prompts(6, TaskConfig(d=5, n=20, kappa=3.0), seed=0)
    lam = torch.linalg.eigvalsh(prompt_hessians(p))
    assert torch.allclose(paper_rate(p), -lam[:, 0] / (2 * lam[:, -1]))
    eta = theory_step_size(5, 20)
    assert torch.allclose(gd_rate(p, eta), torch.maximum((1 - eta * lam[:, 0]).abs(), (1 - eta * lam[:, -1]).abs()).log())


def test_measured_slope_of_the_construction_matches_the_gd_prediction_on_most_prompts():
    task = TaskConfig(d=6, n=24, kappa=2.0)
    p = sample_prompts(60, task, seed=3)
    eta = theory_step_size(6, 24)
    r = rate_in_T(gd_construction(6, 1, eta), p, 120, eta)
    ratio = r["slope"] / r["gd"]
    assert abs(float(ratio.median()) - 1) < 0.02
    assert float(ratio.min()) > 0.97  # a secant over a finite window is at least as steep as the slowest mode


def test_random_covariances_have_bounded_condition_numbers_and_differ_by_seed():
    S = random_covariance_roots(50, 6, 20.0, torch.Generator().manual_seed(0))
    ev = torch.linalg.eigvalsh(S @ S.transpose(1, 2))
    assert torch.allclose(ev[:, -1], torch.ones(50, dtype=torch.float64))
    kappa = ev[:, -1] / ev[:, 0]
    assert float(kappa.min()) >= 1 - 1e-9 and float(kappa.max()) <= 20 + 1e-6 and float(kappa.std()) > 1
    task = TaskConfig(d=4, n=8, kappa_max=10.0)
    a, b = sample_prompts(3, task, seed=7), sample_prompts(3, task, seed=8)
    assert not torch.allclose(prompt_hessians(a), prompt_hessians(b))
    with pytest.raises(InputError, match="kappa_max"):
        TaskConfig(kappa_max=0.5)
