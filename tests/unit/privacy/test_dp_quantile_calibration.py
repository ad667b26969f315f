"""DP quantiles are as accurate as OpenDP's quantile mechanism promises at their ε, for all rows and per
group, and grow more accurate as ε grows.

The mechanism scores every candidate c by how far it is, in rank, from the quantile at `alpha` of the
clamped values: |(1 - alpha) #(x < c) - alpha #(x > c)| (OpenDP's `make_quantile_score_candidates`, up
to a constant factor), and picks the candidate of the least score plus Gumbel noise of the release's
scale s (in the same rank units: ε = 2 max(alpha, 1 - alpha) / s). So a released candidate's score
exceeds the best one's by more than s (ln |candidates| + ln(1/β)) with probability at most β. The data
are seeded; OpenDP's noise comes from a CSPRNG that cannot be seeded, so with β = 1e-6 per release a
false failure of this module is rarer than 1 in 1000 runs, while a scale off by a wrong budget split
misses the band or the spread by far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from custos.privacy.dp import dp_quantiles
from custos.privacy.dp_groups import dp_group_quantiles

LOWER, UPPER, CANDIDATES = 0.0, 100.0, 1001
GRID = np.linspace(LOWER, UPPER, CANDIDATES)
BETA = 1e-6
RUNS = 300


def known_data(seed: int, rows: int = 1000) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).normal(50, 15, rows)


def excess_scores(values: npt.NDArray[np.float64], alpha: float, released: Sequence[float]) -> list[float]:
    """How much worse than the best candidate each released value scores, in rank units."""
    data = np.sort(np.clip(values, LOWER, UPPER))
    below = np.searchsorted(data, GRID, side="left")
    above = len(data) - np.searchsorted(data, GRID, side="right")
    scores = np.abs((1 - alpha) * below - alpha * above)
    index = np.rint((np.asarray(released) - LOWER) / (GRID[1] - GRID[0])).astype(np.int64)
    assert np.allclose(GRID[index], released)  # every release is a candidate
    return [float(s) for s in scores[index] - scores.min()]


def band(scale: float) -> float:
    return scale * (math.log(CANDIDATES) + math.log(1 / BETA))


@pytest.mark.parametrize("mechanism", ["laplace", "gaussian"])
def test_released_quantiles_fall_within_the_error_band_of_their_scale(mechanism: str) -> None:
    values = known_data(1)
    delta = 1e-6 if mechanism == "gaussian" else 0.0
    for alpha in (0.1, 0.5, 0.9):
        releases = [
            dp_quantiles(values, LOWER, UPPER, [alpha], epsilon=0.1, mechanism=mechanism, delta=delta)  # type: ignore[arg-type]
            for _ in range(RUNS)
        ]
        scale = releases[0].scales["q0"]
        assert all(r.epsilon <= 0.1 + 1e-9 and r.delta <= delta for r in releases)
        if mechanism == "laplace":  # the least noise that is 0.1-DP: ε = 2 max(alpha, 1 - alpha) / s
            assert scale == pytest.approx(2 * max(alpha, 1 - alpha) / 0.1, rel=1e-5)
        worst = max(excess_scores(values, alpha, [r.value[0] for r in releases]))
        assert worst <= band(scale), (alpha, worst, band(scale))


def test_the_spread_of_released_quantiles_shrinks_as_epsilon_grows() -> None:
    values = known_data(2)
    true_median = float(np.median(values))
    errors = []
    for epsilon in (0.02, 0.2, 2.0):
        released = [dp_quantiles(values, LOWER, UPPER, [0.5], epsilon=epsilon).value[0] for _ in range(RUNS)]
        errors.append(float(np.mean(np.abs(np.asarray(released) - true_median))))
    # Ten times the ε: about a tenth of the error, until the candidates' spacing (0.1) is reached.
    assert errors[0] > 3 * errors[1] > 3 * errors[2], errors
    assert errors[2] < 0.1, errors


def test_a_quantile_per_group_is_as_accurate_as_one_over_all_rows() -> None:
    """Groups are disjoint: each gets the whole budget of the query, so the same scale as all rows."""
    groups = [known_data(3, 800), known_data(4, 300) + 20, known_data(5, 50) - 20]
    alphas = [0.25, 0.5]
    releases = [dp_group_quantiles(groups, LOWER, UPPER, alphas, epsilon=0.2) for _ in range(RUNS)]
    alone = dp_quantiles(groups[0], LOWER, UPPER, alphas, epsilon=0.2)

    assert releases[0].scales == pytest.approx(alone.scales)
    assert releases[0].epsilon == pytest.approx(alone.epsilon)
    for g, values in enumerate(groups):
        for a, alpha in enumerate(alphas):
            found = [r.value[g][a] for r in releases]
            worst = max(excess_scores(values, alpha, found))
            assert worst <= band(releases[0].scales[f"q{a}"]), (g, alpha, worst)


def test_the_stated_map_of_a_quantile_per_group_is_the_parallel_composition_bound() -> None:
    """A person's c rows may fall in several groups: the per-group costs must add up to at most the
    cost at c, which holds when OpenDP's map is superadditive (linear under pure DP, quadratic under
    zCDP)."""
    from custos.privacy.dp import quantile_measurement

    for mechanism in ("laplace", "gaussian"):
        inner = quantile_measurement(LOWER, UPPER, GRID.tolist(), 0.5, mechanism, 3.0)  # type: ignore[arg-type]
        cost = [float(inner.map(d)) for d in range(9)]  # type: ignore[no-untyped-call]
        for total in range(1, 9):
            for part in range(total + 1):
                assert cost[part] + cost[total - part] <= cost[total] + 1e-12
