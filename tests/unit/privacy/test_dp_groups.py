"""Releases per group of a public partition: every group in one release, at the cost and with the noise
of one release over all rows (parallel composition), and of the clamped values of that group only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from custos.core.errors import InvalidInput
from custos.privacy.dp import ClampedColumn, dp_bin_counts, dp_mean, dp_sum, dp_variance
from custos.privacy.dp_groups import dp_group_means, dp_group_quantiles, dp_group_sums, dp_group_variances

RNG = np.random.default_rng(11)
GROUPS = [RNG.uniform(20, 60, 4000), RNG.uniform(40, 90, 2500), np.asarray([]), RNG.uniform(0, 100, 30)]


def cells(lower: float = 0.0, upper: float = 100.0) -> list[ClampedColumn]:
    return [ClampedColumn.of(values, lower, upper) for values in GROUPS]


@pytest.mark.parametrize(
    ("grouped", "alone"),
    [(dp_group_sums, dp_sum), (dp_group_means, dp_mean), (dp_group_variances, dp_variance)],
)
@pytest.mark.parametrize(("mechanism", "delta"), [("laplace", 0.0), ("gaussian", 1e-6)])
def test_a_release_per_group_costs_and_noises_as_one_over_all_rows(
    grouped: Callable[..., Any], alone: Callable[..., Any], mechanism: str, delta: float
) -> None:
    budget = {"epsilon": 0.5, "mechanism": mechanism, "delta": delta}
    per_group = grouped(cells(), 0.0, 100.0, **budget)
    all_rows = alone(np.concatenate(GROUPS), 0.0, 100.0, **budget)

    assert len(per_group.value) == len(GROUPS)
    assert (per_group.epsilon, per_group.delta) == pytest.approx((all_rows.epsilon, all_rows.delta))
    assert per_group.epsilon <= 0.5 and per_group.delta <= delta
    assert sorted(per_group.scales.values()) == pytest.approx(sorted(all_rows.scales.values()))


def test_each_group_gets_the_statistics_of_its_own_clamped_values() -> None:
    big = {"epsilon": 1e4}  # noise far below the tolerances
    sums = dp_group_sums(cells(), 0.0, 100.0, **big).value
    means = dp_group_means(cells(), 0.0, 100.0, **big).value
    variances = dp_group_variances(cells(), 0.0, 100.0, **big).value
    for g in (0, 1, 3):
        assert sums[g] == pytest.approx(GROUPS[g].sum(), abs=1.0)
        assert means[g] == pytest.approx(GROUPS[g].mean(), abs=0.01)
        assert variances[g] == pytest.approx(GROUPS[g].var(ddof=1), rel=0.01)
    assert abs(sums[2]) < 1.0 and 0.0 <= means[2] <= 100.0 and 0.0 <= variances[2] <= 50.0**2

    clamped = dp_group_means([ClampedColumn.of(v, 30.0, 50.0) for v in GROUPS], 30.0, 50.0, **big).value
    assert clamped[1] == pytest.approx(np.clip(GROUPS[1], 30, 50).mean(), abs=0.01)


def test_counts_per_group_are_noisy_counts_of_disjoint_bins() -> None:
    """Counts per group are OpenDP's count-by-categories: one person moves one group's count."""
    counts = [c.count for c in cells()]
    draws = np.asarray([dp_bin_counts(counts, epsilon=0.5).value for _ in range(2000)]) - counts
    # each count: discrete Laplace of scale 1 / 0.5 = 2 (std 2.77), not 2 x that for 4 groups
    assert np.all((draws.std(axis=0) > 2.4) & (draws.std(axis=0) < 3.2)), draws.std(axis=0)


def test_groups_are_refused_when_they_are_not_what_the_release_is_for() -> None:
    with pytest.raises(InvalidInput, match="clamped to"):
        dp_group_sums(cells(0.0, 50.0), 0.0, 100.0, epsilon=1.0)
    with pytest.raises(InvalidInput, match="at least one group"):
        dp_group_means([], 0.0, 100.0, epsilon=1.0)
    with pytest.raises(InvalidInput, match="at least one group"):
        dp_group_quantiles([], 0.0, 100.0, [0.5], epsilon=1.0)
    with pytest.raises(InvalidInput, match="alphas"):
        dp_group_quantiles(GROUPS, 0.0, 100.0, [1.5], epsilon=1.0)
    with pytest.raises(InvalidInput, match="lower < upper"):
        dp_group_variances(cells(), 100.0, 0.0, epsilon=1.0)


def test_quantiles_per_group_skip_missing_values_and_an_empty_group_still_gets_a_candidate() -> None:
    with_missing = [np.concatenate([GROUPS[0], [np.nan] * 100]), GROUPS[2]]
    release = dp_group_quantiles(with_missing, 0.0, 100.0, [0.5], epsilon=50.0)

    assert release.value[0][0] == pytest.approx(np.median(GROUPS[0]), abs=0.5)
    assert 0.0 <= release.value[1][0] <= 100.0
