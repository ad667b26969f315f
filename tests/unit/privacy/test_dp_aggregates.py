"""The release path of `custos.privacy.dp`: exact clamped aggregates computed with NumPy, released by
OpenDP measurements whose stability we state. The stated sensitivities must bound what one row can
do, and must equal what OpenDP states when it computes the same statistic from the rows, so that the
noise is unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest
from opendp import transformations as dpt

from custos.core.errors import InvalidInput
from custos.privacy import dp
from custos.privacy.dp import ClampedColumn, Grid, bin_counts, dp_bin_counts, dp_mean, dp_sum, dp_variance
from custos.privacy.mechanisms import enable_opendp, float_rows

BOUNDS = [(0.0, 100.0), (10.0, 70.0), (-3.0, 70.0), (-50.0, 50.0), (-1e6, -2.5), (1e-3, 2e-3)]


def opendp_sum_sensitivity(lower: float, upper: float, contributions: int) -> float:
    """What OpenDP states for a float sum of an unknown number of rows clamped to the bounds (without
    the small rounding relaxation it adds for its float arithmetic, which exact sums do not need)."""
    enable_opendp()
    summed = float_rows() >> dpt.then_clamp((lower, upper)) >> dpt.then_sum()  # type: ignore[no-untyped-call]
    return float(summed.map(contributions))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("lower, upper", BOUNDS)
@pytest.mark.parametrize("contributions", [1, 3])
def test_the_stated_sum_sensitivity_is_what_opendp_states_for_the_rows(
    lower: float, upper: float, contributions: int
) -> None:
    grid = Grid.of(lower, upper)
    stated = grid.sum_sensitivity * grid.step
    # the grid's bounds are within 2**-30 of the magnitude of the bounds
    assert stated == pytest.approx(max(upper - lower, abs(lower), abs(upper)), rel=2e-9)
    assert contributions * stated == pytest.approx(
        opendp_sum_sensitivity(lower, upper, contributions), rel=1e-6
    )
    release = dp_sum([lower, upper], lower, upper, epsilon=0.5, contributions=contributions)
    assert release.scales["sum"] == pytest.approx(contributions * stated / 0.5, rel=1e-6)


def test_units_stay_within_the_bounds_and_sums_of_units_are_exact_in_any_order() -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(-3.0, 70.0, 100_001)
    grid = Grid.of(-3.0, 70.0)
    assert grid.low * grid.step >= -3.0 and grid.high * grid.step <= 70.0
    total = grid.total(values)
    assert total == grid.total(values[::-1]) == grid.total(rng.permutation(values))
    assert abs(total * grid.step - math.fsum(values.tolist())) <= len(values) * grid.step / 2


@pytest.mark.parametrize("lower, upper", BOUNDS)
def test_one_added_row_moves_each_aggregate_by_at_most_its_stated_sensitivity(
    lower: float, upper: float
) -> None:
    rng = np.random.default_rng(5)
    span = upper - lower
    base = rng.uniform(lower - span, upper + span, 2000)
    before = ClampedColumn.of(base, lower, upper)
    for extra in [lower, upper, (lower + upper) / 2, lower - 1e9, upper + 1e9, 0.0, float("nan")]:
        after = ClampedColumn.of(np.append(base, extra), lower, upper)
        assert abs(after.count - before.count) <= 1
        assert abs(after.total - before.total) <= before.grid.sum_sensitivity
        assert abs(after.centred - before.centred) <= before.centred_grid.sum_sensitivity
        assert abs(after.squares - before.squares) <= before.squares_grid.sum_sensitivity
    half = span / 2
    assert before.squares_grid.sum_sensitivity * before.squares_grid.step == pytest.approx(half * half)


def test_the_aggregates_are_of_the_clamped_values_and_skip_missing_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = np.array([5.0, float("nan"), 250.0, -40.0, 50.0, 99.5, float("inf")])
    kept = np.clip(values[~np.isnan(values)], 0.0, 100.0)
    monkeypatch.setattr(dp, "_CHUNK", 3)  # several chunks, one with a NaN

    column = ClampedColumn.of(values, 0.0, 100.0)

    assert column.count == 6
    assert column.total * column.grid.step == pytest.approx(kept.sum(), abs=1e-6)
    assert column.centred * column.centred_grid.step == pytest.approx((kept - 50).sum(), abs=1e-6)
    assert column.squares * column.squares_grid.step == pytest.approx(((kept - 50) ** 2).sum(), abs=1e-5)
    monkeypatch.setattr(dp, "_CHUNK", 1 << 20)
    assert ClampedColumn.of(values, 0.0, 100.0) == column


def test_releases_of_one_column_share_its_aggregates_and_give_the_same_statistics() -> None:
    rng = np.random.default_rng(9)
    values = np.concatenate([rng.uniform(0, 100, 3000), [1e9, -1e9]])
    column = ClampedColumn.of(values, 0.0, 100.0)
    clamped = np.clip(values, 0, 100)
    loud = 1e5

    assert dp_sum(column, 0, 100, epsilon=loud).value == pytest.approx(clamped.sum(), abs=0.5)
    assert dp_mean(column, 0, 100, epsilon=loud).value == pytest.approx(clamped.mean(), abs=1e-3)
    assert dp_variance(column, 0, 100, epsilon=loud).value == pytest.approx(np.var(clamped, ddof=1), rel=1e-3)
    with pytest.raises(InvalidInput, match=r"clamped to \[0.0, 100.0\], not \[0, 50\]"):
        dp_mean(column, 0, 50, epsilon=1.0)


def test_bin_counts_count_as_numpy_histogram_does() -> None:
    values = np.array([0.0, 9.99, 10.0, 24.0, 100.0, 100.5, -1.0, float("nan"), 50.0])
    edges = [0.0, 10.0, 25.0, 50.0, 100.0]

    expected, _ = np.histogram(values[~np.isnan(values)], bins=edges)
    assert bin_counts(values, edges) == expected.tolist()


def discrete_laplace_std(scale: float) -> float:
    a = math.exp(-1.0 / scale)
    return math.sqrt(2 * a) / (1 - a)


def test_each_bin_count_gets_the_noise_of_one_count() -> None:
    epsilon, draws, contributions = 0.5, 3000, 2
    true = [100, 0, 7]
    noisy = np.array(
        [dp_bin_counts(true, epsilon=epsilon, contributions=contributions).value for _ in range(draws)]
    )
    noise = noisy - np.array(true)

    expected = discrete_laplace_std(contributions / epsilon)
    tolerance = 4 * expected * math.sqrt(5 / draws) / 2  # 4 standard errors of a Laplace sample std
    for column in noise.T:
        assert abs(column.std() - expected) < tolerance
        assert abs(column.mean()) < 4 * expected / math.sqrt(draws)
    release = dp_bin_counts(true, epsilon=epsilon, contributions=contributions)
    assert release.scales == {"counts": pytest.approx(contributions / epsilon)}
    assert release.epsilon <= epsilon


def test_gaussian_bin_counts_are_calibrated_in_l2_to_the_budget() -> None:
    release = dp_bin_counts([5, 6, 7], epsilon=1.0, mechanism="gaussian", delta=1e-6, contributions=2)
    single = dp_bin_counts([5], epsilon=1.0, mechanism="gaussian", delta=1e-6, contributions=2)

    assert release.scales["counts"] == pytest.approx(single.scales["counts"])  # bins do not add noise
    assert 0.99 < release.epsilon <= 1.0 and release.delta <= 1e-6
    with pytest.raises(InvalidInput, match="at least one bin"):
        dp_bin_counts([], epsilon=1.0)
