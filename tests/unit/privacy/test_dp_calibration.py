"""The noise of DP releases has the scale their ε (and δ) call for, measured over many draws.

OpenDP draws from a CSPRNG that cannot be seeded, so these are statistical tests: each compares a
sample statistic with the value that theory predicts from ε alone, with a tolerance of at least four
standard errors of that statistic (a false failure is rarer than 1 in 10 000), while a scale off by
the factor a wrong sensitivity or a wrong budget split would give (x2, x0.5) fails by far.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from custos.privacy.dp import dp_count, dp_mean, dp_sum, dp_variance


def discrete_laplace_std(scale: float) -> float:
    """Standard deviation of the discrete Laplace (two-sided geometric) distribution of scale b:
    P(k) ∝ exp(-|k| / b), variance 2a / (1 - a)² with a = exp(-1 / b)."""
    a = math.exp(-1.0 / scale)
    return math.sqrt(2 * a) / (1 - a)


def std_error_of_std(std: float, draws: int, excess_kurtosis: float) -> float:
    """Standard error of a sample standard deviation: sqrt((kurtosis - 1) / n) / 2 relative."""
    return std * math.sqrt((excess_kurtosis + 2) / draws) / 2


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def analytic_gaussian_sigma(epsilon: float, delta: float) -> float:
    """The least sigma for which a sensitivity-1 Gaussian mechanism is (ε, δ)-DP at all (Balle & Wang
    2018, Theorem 8): no calibration may add less noise than this."""

    def delta_of(sigma: float) -> float:
        a, b = 1 / (2 * sigma), epsilon * sigma
        return normal_cdf(a - b) - math.exp(epsilon) * normal_cdf(-a - b)

    low, high = 1e-3, 1e3
    for _ in range(200):
        middle = math.sqrt(low * high)
        low, high = (low, middle) if delta_of(middle) <= delta else (middle, high)
    return high


def classic_zcdp_sigma(epsilon: float, delta: float) -> float:
    """The sigma the textbook conversion gives: rho = 1 / (2 sigma²) zCDP is (rho + 2 sqrt(rho
    ln(1/δ)), δ)-DP (Bun & Steinke 2016, Prop. 1.3). OpenDP's conversion is tighter, never looser."""
    log_term = math.log(1 / delta)
    root = (-2 * math.sqrt(log_term) + math.sqrt(4 * log_term + 4 * epsilon)) / 2
    return 1 / math.sqrt(2 * root * root)


def test_laplace_count_noise_has_scale_one_over_epsilon() -> None:
    epsilon, draws, true_count = 0.5, 10_000, 1000
    releases = [dp_count(true_count, epsilon=epsilon) for _ in range(draws)]
    noise = np.array([r.value for r in releases], dtype=np.float64) - true_count

    expected = discrete_laplace_std(1 / epsilon)  # ~ sqrt(2) / ε = 2.83 for ε = 0.5
    tolerance = 4 * std_error_of_std(expected, draws, excess_kurtosis=3)
    print(f"laplace count, eps={epsilon}: std {noise.std():.4f}, expected {expected:.4f} ± {tolerance:.4f}")
    assert abs(noise.std() - expected) < tolerance
    assert abs(noise.mean()) < 4 * expected / math.sqrt(draws)  # unbiased
    assert releases[0].scales == {"count": pytest.approx(1 / epsilon)}
    assert releases[0].epsilon <= epsilon and releases[0].delta == 0


def test_laplace_count_of_rows_has_the_same_scale() -> None:
    epsilon, draws = 1.0, 4000
    rows = np.arange(500, dtype=np.float64)
    noise = np.array([dp_count(rows, epsilon=epsilon).value for _ in range(draws)], dtype=np.float64) - 500

    expected = discrete_laplace_std(1 / epsilon)
    tolerance = 4 * std_error_of_std(expected, draws, excess_kurtosis=3)
    print(f"laplace count of rows, eps={epsilon}: std {noise.std():.4f}, expected {expected:.4f}")
    assert abs(noise.std() - expected) < tolerance


def test_two_rows_per_person_double_the_noise() -> None:
    epsilon, draws = 1.0, 4000
    noise = np.array([dp_count(100, epsilon=epsilon, contributions=2).value for _ in range(draws)]) - 100

    expected = discrete_laplace_std(2 / epsilon)
    assert abs(noise.std() - expected) < 4 * std_error_of_std(expected, draws, excess_kurtosis=3)


def test_gaussian_count_noise_is_enough_for_epsilon_delta_and_no_more_than_the_textbook() -> None:
    epsilon, delta, draws = 1.0, 1e-6, 10_000
    releases = [dp_count(1000, epsilon=epsilon, mechanism="gaussian", delta=delta) for _ in range(draws)]
    noise = np.array([r.value for r in releases], dtype=np.float64) - 1000

    sigma = releases[0].scales["count"]
    floor, ceiling = analytic_gaussian_sigma(epsilon, delta), classic_zcdp_sigma(epsilon, delta)
    tolerance = 4 * std_error_of_std(sigma, draws, excess_kurtosis=0)
    print(
        f"gaussian count, eps={epsilon}, delta={delta}: std {noise.std():.4f}, reported sigma {sigma:.4f}, "
        f"analytic floor {floor:.4f}, textbook ceiling {ceiling:.4f}"
    )
    assert floor <= sigma <= ceiling
    assert abs(noise.std() - sigma) < tolerance
    assert releases[0].epsilon <= epsilon and releases[0].delta <= delta
    assert releases[0].epsilon > 0.99 * epsilon  # calibrated to the budget, not far below it


def test_laplace_mean_noise_has_the_scale_of_a_sum_with_half_the_budget() -> None:
    epsilon, draws, lower, upper, n = 1.0, 4000, 0.0, 100.0, 1000
    values = np.concatenate([np.linspace(10, 90, n // 2), np.linspace(90, 10, n // 2)])  # mean 50
    releases = [dp_mean(values, lower, upper, epsilon=epsilon) for _ in range(draws)]
    noise = np.array([r.value for r in releases]) - values.mean()

    # The noisy sum gets ε/2; one row moves a float sum over [-50, 50] by up to 100 in OpenDP's
    # accounting, so its Laplace scale is 100 / (ε/2); over n rows the mean moves by that over n.
    sum_scale = (upper - lower) / (epsilon / 2)
    expected = math.sqrt(2) * sum_scale / n
    tolerance = 4 * std_error_of_std(expected, draws, excess_kurtosis=3)
    print(f"laplace mean, eps={epsilon}, n={n}: std {noise.std():.5f}, expected {expected:.5f}")
    assert abs(noise.std() - expected) < tolerance
    assert releases[0].scales["sum"] == pytest.approx(sum_scale, rel=1e-6)
    assert releases[0].scales["count"] == pytest.approx(2 / epsilon, rel=1e-6)
    assert releases[0].epsilon <= epsilon


def test_gaussian_mean_noise_matches_its_reported_sum_scale() -> None:
    epsilon, delta, draws, n = 1.0, 1e-6, 4000, 1000
    values = np.concatenate([np.linspace(10, 90, n // 2), np.linspace(90, 10, n // 2)])
    releases = [
        dp_mean(values, 0, 100, epsilon=epsilon, mechanism="gaussian", delta=delta) for _ in range(draws)
    ]
    noise = np.array([r.value for r in releases]) - values.mean()

    sum_sigma = releases[0].scales["sum"]
    expected = sum_sigma / n
    print(f"gaussian mean, eps={epsilon}, delta={delta}: std {noise.std():.5f}, expected {expected:.5f}")
    assert abs(noise.std() - expected) < 4 * std_error_of_std(expected, draws, excess_kurtosis=0)
    # two parts share (ε, δ): each needs more noise than one count spending all of it would
    single = dp_count(1000, epsilon=epsilon, mechanism="gaussian", delta=delta).scales["count"]
    assert releases[0].scales["count"] > single
    assert sum_sigma == pytest.approx(100 * releases[0].scales["count"], rel=1e-6)
    assert releases[0].epsilon <= epsilon and releases[0].delta <= delta


def test_values_outside_the_bounds_are_clamped_before_the_mean() -> None:
    rng = np.random.default_rng(7)
    inside = rng.uniform(0, 100, 990)
    values = np.concatenate([inside, np.full(8, 1e9), np.full(2, -1e9)])
    clamped_mean = float(np.clip(values, 0, 100).mean())
    draws = 1000

    means = np.array([dp_mean(values, 0, 100, epsilon=1.0).value for _ in range(draws)])

    noise_std = math.sqrt(2) * 200 / len(values)
    print(
        f"clamped mean {clamped_mean:.4f}, raw mean {values.mean():.1f}, DP mean of means {means.mean():.4f}"
    )
    assert abs(means.mean() - clamped_mean) < 4 * noise_std / math.sqrt(draws) + 0.01
    assert values.mean() > 1e6  # what the outliers would make of an unclamped mean
    assert means.max() <= 100 and means.min() >= 0


def test_one_huge_value_moves_a_sum_by_at_most_its_bound() -> None:
    draws = 2000
    sums = np.array([dp_sum([1e6, 2.0, 3.0], 0, 10, epsilon=1.0).value for _ in range(draws)])

    # clamped: 10 + 2 + 3 = 15; noise Laplace(10 / ε), so the mean of the draws is 15 within 4 SE
    assert abs(sums.mean() - 15) < 4 * math.sqrt(2) * 10 / math.sqrt(draws)


def test_variance_of_clamped_values_stays_within_what_the_bounds_allow() -> None:
    values = np.concatenate([np.zeros(500), np.full(500, 1e9)])  # clamped to 0 and 10: variance ~25
    releases = [dp_variance(values, 0, 10, epsilon=1.0) for _ in range(300)]

    assert all(0 <= r.value <= 25 for r in releases)
    assert abs(np.mean([r.value for r in releases]) - np.var(np.clip(values, 0, 10), ddof=1)) < 0.5
