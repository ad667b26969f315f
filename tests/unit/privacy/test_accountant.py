"""The training accountant (`custos.privacy.accountant`, over Google's dp-accounting) against values
that can be checked independently: the exact (analytic) Gaussian mechanism of Balle & Wang (2018) for
one step, the ordering RDP >= PLD >= exact, and the DP-SGD setting of Abadi et al. (2016)."""

from __future__ import annotations

import math

import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from custos.core.errors import InvalidInput
from custos.privacy.accountant import training_epsilon


def analytic_gaussian_epsilon(sigma: float, delta: float) -> float:
    """The exact epsilon of one Gaussian mechanism with noise multiplier `sigma` (sensitivity 1):
    the root of delta(eps) = Phi(1/(2 sigma) - eps sigma) - e^eps Phi(-1/(2 sigma) - eps sigma)."""

    def gap(eps: float) -> float:
        a = norm.cdf(1 / (2 * sigma) - eps * sigma)
        b = math.exp(eps) * norm.cdf(-1 / (2 * sigma) - eps * sigma)
        return float(a - b - delta)

    return float(brentq(gap, 0.0, 100.0))


@pytest.mark.parametrize(("sigma", "delta"), [(1.0, 1e-5), (2.0, 1e-5), (0.8, 1e-6)])
def test_one_gaussian_step_matches_the_analytic_gaussian_mechanism(sigma: float, delta: float) -> None:
    exact = analytic_gaussian_epsilon(sigma, delta)
    pld = training_epsilon(1, sigma, 1.0, 1, delta, accountant="pld")
    rdp = training_epsilon(1, sigma, 1.0, 1, delta)
    assert pld == pytest.approx(exact, rel=0.02)
    # RDP is an upper bound, looser than PLD but not by much for one step.
    assert exact <= rdp <= 1.2 * exact


def test_dp_sgd_of_abadi_et_al_gives_the_published_order_of_epsilon() -> None:
    # MNIST: 60,000 rows, lots of 256, noise 1.1, 60 epochs, delta 1e-5. Abadi et al. report
    # epsilon about 2 to 3 for this setting (TF Privacy's tutorial: 2.92 with its older RDP orders).
    q = 256 / 60_000
    steps = math.ceil(60 / q)
    rdp = training_epsilon(1, 1.1, q, steps, 1e-5)
    pld = training_epsilon(1, 1.1, q, steps, 1e-5, accountant="pld")
    assert 2.3 < rdp < 3.0
    assert 0.8 * rdp < pld <= rdp


def test_rounds_and_steps_compose_the_same_way() -> None:
    assert training_epsilon(10, 1.1, 0.01, 100, 1e-5) == pytest.approx(
        training_epsilon(1, 1.1, 0.01, 1000, 1e-5)
    )


def test_more_rounds_cost_more_and_more_noise_costs_less() -> None:
    base = training_epsilon(5, 2.0, 1.0, 1, 1e-5)
    assert training_epsilon(10, 2.0, 1.0, 1, 1e-5) > base
    assert training_epsilon(5, 4.0, 1.0, 1, 1e-5) < base
    assert training_epsilon(5, 2.0, 0.1, 1, 1e-5) < base


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((0, 1.0, 1.0, 1, 1e-5), "round"),
        ((1, 0.0, 1.0, 1, 1e-5), "noise_multiplier"),
        ((1, 1.0, 1.5, 1, 1e-5), "sampling_rate"),
        ((1, 1.0, 1.0, 1, 0.0), "delta"),
    ],
)
def test_arguments_out_of_range_are_refused_by_name(
    args: tuple[int, float, float, int, float], named: str
) -> None:
    with pytest.raises(InvalidInput, match=named):
        training_epsilon(*args)
