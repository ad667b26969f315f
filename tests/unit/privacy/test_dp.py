"""DP releases compute the right statistic (seen through a very large ε, where the noise is negligible),
report what they cost, and refuse bad budgets and bounds."""

from __future__ import annotations

import numpy as np
import pytest

from custos.core.errors import InvalidInput
from custos.privacy.dp import (
    dp_count,
    dp_histogram,
    dp_mean,
    dp_quantiles,
    dp_sum,
    dp_variance,
    split_budget,
)

LOUD = 1e4  # an ε so large that the noise is far below what the assertions resolve

rng = np.random.default_rng(11)
VALUES = rng.uniform(0, 100, 2000)


def test_count_of_rows_ignores_missing_values() -> None:
    assert dp_count([1.0, float("nan"), 2.0], epsilon=LOUD).value == 2
    assert dp_count(np.int64(42), epsilon=LOUD).value == 42


def test_sum_mean_and_variance_are_of_the_clamped_values() -> None:
    values = np.concatenate([VALUES, [250.0, -40.0]])
    clamped = np.clip(values, 0, 100)

    assert dp_sum(values, 0, 100, epsilon=LOUD).value == pytest.approx(clamped.sum(), abs=1.0)
    assert dp_mean(values, 0, 100, epsilon=LOUD).value == pytest.approx(clamped.mean(), abs=0.01)
    assert dp_variance(values, 0, 100, epsilon=LOUD).value == pytest.approx(np.var(clamped, ddof=1), rel=1e-3)


@pytest.mark.parametrize("mechanism, delta", [("laplace", 0.0), ("gaussian", 1e-6)])
def test_histogram_over_edges_counts_as_numpy_does(mechanism: str, delta: float) -> None:
    edges = [0.0, 10.0, 25.0, 50.0, 100.0]
    values = np.concatenate([VALUES, [0.0, 100.0, -1.0, 100.5, float("nan")]])  # 100 is in the last bin

    epsilon = LOUD if mechanism == "laplace" else 100.0  # the Gaussian conversion overflows far sooner
    release = dp_histogram(values, edges=edges, epsilon=epsilon, mechanism=mechanism, delta=delta)  # type: ignore[arg-type]

    expected, _ = np.histogram(values[~np.isnan(values)], bins=edges)
    assert release.value == expected.tolist()
    assert release.mechanism == mechanism


def test_histogram_over_categories_counts_listed_categories_only() -> None:
    values = ["F", "M", "F", "X", None, "F"]

    assert dp_histogram(values, categories=["F", "M"], epsilon=LOUD * 10).value == [3, 1]


def test_quantiles_are_within_the_candidate_grid_of_the_true_ones() -> None:
    release = dp_quantiles(VALUES, 0, 100, [0.1, 0.5, 0.9], epsilon=LOUD)

    assert np.allclose(release.value, np.quantile(VALUES, [0.1, 0.5, 0.9]), atol=0.5)
    assert len(release.scales) == 3


def test_quantiles_of_values_beyond_the_bounds_stay_within_them() -> None:
    release = dp_quantiles([1e9] * 100, 0, 100, [0.5], epsilon=LOUD)

    assert release.value == [100.0]


@pytest.mark.parametrize(
    "release",
    [
        lambda: dp_count(10, epsilon=0.3),
        lambda: dp_sum(VALUES, 0, 100, epsilon=0.3),
        lambda: dp_mean(VALUES, 0, 100, epsilon=0.3),
        lambda: dp_variance(VALUES, 0, 100, epsilon=0.3),
        lambda: dp_histogram(VALUES, edges=[0, 50, 100], epsilon=0.3),
        lambda: dp_quantiles(VALUES, 0, 100, [0.5, 0.75], epsilon=0.3),
        lambda: dp_mean(VALUES, 0, 100, epsilon=0.3, mechanism="gaussian", delta=1e-7),
        lambda: dp_quantiles(VALUES, 0, 100, [0.5], epsilon=0.3, mechanism="gaussian", delta=1e-7),
    ],
)
def test_a_release_costs_at_most_its_budget_and_close_to_it(release: object) -> None:
    result = release()  # type: ignore[operator]

    assert 0.299 < result.epsilon <= 0.3
    assert result.delta <= (1e-7 if result.mechanism == "gaussian" else 0.0)


def test_a_budget_split_over_a_jobs_queries_adds_back_up() -> None:
    share = split_budget(1.0, 1e-6, 4)
    releases = [
        dp_count(100, epsilon=share.epsilon, mechanism="gaussian", delta=share.delta) for _ in range(4)
    ]

    assert sum(r.epsilon for r in releases) <= 1.0
    assert sum(r.delta for r in releases) <= 1e-6 * (1 + 1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dp_count(5, epsilon=0), "epsilon must be a positive number"),
        (lambda: dp_count(5, epsilon=float("nan")), "epsilon must be a positive number"),
        (lambda: dp_count(5, epsilon=1, delta=1e-6), "laplace mechanism spends delta 0"),
        (lambda: dp_count(5, epsilon=1, mechanism="gaussian"), "needs 0 < delta < 1"),
        (lambda: dp_count(5, epsilon=1, mechanism="exponential"), "laplace or gaussian"),  # type: ignore[arg-type]
        (lambda: dp_count(5, epsilon=1, contributions=0), "contributions must be at least 1"),
        (lambda: dp_sum(VALUES, 10, 0, epsilon=1), "lower < upper"),
        (lambda: dp_mean(VALUES, 0, float("inf"), epsilon=1), "finite"),
        (lambda: dp_mean(np.ones((2, 2)), 0, 1, epsilon=1), "one-dimensional"),
        (lambda: dp_histogram(VALUES, edges=[0, 5, 5], epsilon=1), "strictly increasing"),
        (lambda: dp_histogram(VALUES, epsilon=1), "exactly one of edges and categories"),
        (lambda: dp_histogram(["a"], categories=["a", "a"], epsilon=1), "without repeats"),
        (lambda: dp_quantiles(VALUES, 0, 100, [1.5], epsilon=1), r"alphas must be .* in \[0, 1\]"),
        (lambda: dp_quantiles(VALUES, 0, 100, [0.5], epsilon=1, candidates=1), "candidates must be"),
    ],
)
def test_bad_budgets_and_bounds_are_refused(call: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        call()  # type: ignore[operator]
