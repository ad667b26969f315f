"""The pieces of the federated quantile search: order-preserving keys, thresholds, the bisection,
and numpy's linear interpolation repeated bit for bit."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from custos.computations.stats.quantiles import (
    FIRST_HI,
    FIRST_LO,
    Search,
    counts_in,
    float_keys,
    interpolation_points,
    key_of,
    lerp,
    thresholds,
    value_of,
)

SPECIAL = [-math.inf, -1e308, -1.5, -5e-324, -0.0, 0.0, 5e-324, 1e-300, 1.0, 1.5, 2.0, 1e308, math.inf]


def test_keys_preserve_the_order_of_floats_including_signs_subnormals_and_infinities() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([np.array(SPECIAL), rng.normal(0, 1e6, 2000), rng.normal(0, 1e-6, 2000)])
    keys = float_keys(values)
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(keys[order]) >= 0)
    # equal keys exactly when equal values (0.0 == -0.0)
    assert np.array_equal(keys[:, None] == keys[None, :], values[:, None] == values[None, :])
    assert [key_of(float(v)) for v in values] == keys.tolist()


def test_a_key_maps_back_to_its_float() -> None:
    for value in [*SPECIAL, 0.1, -123.456, 2.0**-1070]:
        assert value_of(key_of(value)) == value
    assert value_of(FIRST_HI) == math.inf
    assert value_of(FIRST_LO + 1) == -math.inf


def test_thresholds_lie_strictly_inside_the_interval_and_cover_small_ones() -> None:
    cuts = thresholds(FIRST_LO, FIRST_HI, 255)
    assert len(cuts) == 255
    assert all(FIRST_LO < a < b < FIRST_HI for a, b in itertools.pairwise(cuts))
    assert thresholds(10, 15, 255) == [11, 12, 13, 14]
    assert thresholds(10, 11, 255) == []
    assert thresholds(0, 1000, 3) == [250, 500, 750]


def test_counts_in_counts_keys_in_the_half_open_interval() -> None:
    keys = np.array([1, 3, 3, 5, 9], dtype=np.int64)
    assert counts_in(keys, 2, [3, 4, 5, 8, 9]) == [2, 2, 3, 3, 4]
    assert counts_in(keys, 0, [0, 1]) == [0, 1]


@pytest.mark.parametrize("per_round", [1, 3, 255])
def test_bisection_finds_every_order_statistic(per_round: int) -> None:
    rng = np.random.default_rng(per_round)
    values = np.concatenate([np.round(rng.normal(0, 10, 300), 1), [-0.0, 0.0, math.inf, -math.inf]])
    keys = np.sort(float_keys(values))
    expected = np.sort(values)
    limit = 64 * 2 + 2  # one threshold per round halves the interval: at most 65 rounds
    for k in [0, 1, 150, len(values) - 2, len(values) - 1]:
        search = Search(id=0, column="x", group=None, k=k)
        for _ in range(limit):
            if search.done:
                break
            cuts = thresholds(search.lo, search.hi, per_round)
            search.narrow(cuts, counts_in(keys, search.lo, cuts))
        assert search.done
        assert search.value == expected[k]


def test_interpolation_points_follow_numpys_linear_method() -> None:
    assert interpolation_points(5, 0.5) == (2, 3, 0.0)
    assert interpolation_points(5, 1.0) == (4, 4, 5.0)
    assert interpolation_points(1, 0.3) == (0, 0, 1.0)
    previous, following, gamma = interpolation_points(4, 0.25)
    assert (previous, following) == (0, 1)
    assert gamma == pytest.approx(0.75)


def test_lerp_uses_numpys_expression_from_the_upper_side_when_gamma_is_at_least_half() -> None:
    rng = np.random.default_rng(3)
    differs = 0
    for _ in range(2000):
        a, b = sorted(float(v) for v in rng.normal(0, 100, 2))
        t = float(rng.random())
        naive = a + (b - a) * t
        differs += naive != lerp(a, b, t)
        assert lerp(a, b, t) == float(np.quantile(np.array([a, b]), t))
    assert differs > 0  # the two expressions do differ, so the branch matters


@pytest.mark.parametrize("seed", range(5))
def test_quantile_from_order_statistics_equals_numpy_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = np.round(rng.normal(50, 20, int(rng.integers(1, 500))), int(rng.integers(0, 4)))
    ordered = np.sort(data)
    for prob in [0.0, 1.0, 0.5, *rng.random(20)]:
        previous, following, gamma = interpolation_points(len(data), float(prob))
        got = lerp(float(ordered[previous]), float(ordered[following]), gamma)
        assert got == float(np.quantile(data, prob)), prob
