"""Differentially private statistics per group of a public partition of one site's rows: the groups are
the categories of a column as the dataset's public schema lists them (never read from the data), and a
row whose group is none of them is in no group.

Groups are disjoint, so one release covers every group for the price of one query (parallel
composition): a person who adds or removes `contributions` = c rows changes the groups they are in by
c rows in all. Each release is one OpenDP measurement, calibrated at c as the all-rows releases of
`custos.privacy.dp` are:

- **counts, sums, means, variances per group**: a vector with one aggregate per group, built as in
  `custos.privacy.dp` (exact aggregates in integer units) with a stated stability: one row moves one
  group's aggregate by at most the sensitivity of that aggregate, so c rows move the vector by at most
  c times it in L1 (and in L2). OpenDP adds discrete Laplace or discrete Gaussian noise to every
  element. (The counts are OpenDP's count-by-categories, computed in one NumPy pass.)
- **quantiles per group**: OpenDP's quantile mechanism (`custos.privacy.dp.quantile_measurement`) run
  on each group's rows, as one measurement whose stated privacy map is the per-group mechanism's map
  at c. That is the parallel composition bound: a person with d_g rows in group g costs the sum over
  groups of map(d_g), and the map is linear in the rows changed under pure DP (ε = d / scale) and
  quadratic under zCDP (rho = d² / (8 scale²)), so that sum is at most map(c) when the d_g add up to c. The
  zCDP total converts to (ε, δ) once, after composition, as for every release.

Every function returns one `DpRelease` whose value lists the groups in the order given.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from opendp import domains as dpd
from opendp import measurements as dpm
from opendp import measures as dpms
from opendp import metrics as dpme
from opendp.mod import Measurement

from custos.core.errors import InvalidInput
from custos.privacy.controls import Mechanism
from custos.privacy.dp import (
    ClampedColumn,
    Data,
    check_bounds,
    check_quantile_args,
    quantile_measurement,
    released,
    stated_part,
)
from custos.privacy.mechanisms import Budget, DpRelease, Part, budget_of, calibrated, enable_opendp

__all__ = ["dp_group_means", "dp_group_quantiles", "dp_group_sums", "dp_group_variances"]


def _columns(columns: Sequence[ClampedColumn], lower: float, upper: float) -> list[ClampedColumn]:
    check_bounds(lower, upper)
    if not columns:
        raise InvalidInput("there must be at least one group")
    for column in columns:
        if (column.lower, column.upper) != (lower, upper):
            raise InvalidInput(
                f"the aggregates are clamped to [{column.lower}, {column.upper}], not [{lower}, {upper}]"
            )
    return list(columns)


def dp_group_sums(
    columns: Sequence[ClampedColumn],
    lower: float,
    upper: float,
    *,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
) -> DpRelease[list[float]]:
    """A noisy sum per group of the values clamped to [lower, upper], each with the noise of one
    all-rows sum (`custos.privacy.dp.dp_sum`). `columns` holds each group's aggregates."""
    budget = budget_of(epsilon, delta, mechanism, contributions)
    groups = _columns(columns, lower, upper)
    grid = groups[0].grid

    def parts(b: Budget) -> list[Part]:
        return [stated_part("sums", grid.sum_sensitivity, grid.step, b, vector=True)]

    true = {"sums": [c.total for c in groups]}
    (totals,), release = released(("group_sums", lower, upper), lambda: parts(budget), true, budget)
    return release.release([float(t) * grid.step for t in totals], budget)  # type: ignore[no-any-return]


def dp_group_means(
    columns: Sequence[ClampedColumn],
    lower: float,
    upper: float,
    *,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
) -> DpRelease[list[float]]:
    """A noisy mean per group, as `custos.privacy.dp.dp_mean` makes one: the midpoint plus a noisy sum
    of the values less the midpoint over a noisy count, both vectors over the groups."""
    budget = budget_of(epsilon, delta, mechanism, contributions)
    groups = _columns(columns, lower, upper)
    mid, grid = (lower + upper) / 2, groups[0].centred_grid

    def parts(b: Budget) -> list[Part]:
        return [
            stated_part("counts", 1, 1.0, b, vector=True),
            stated_part("sums", grid.sum_sensitivity, grid.step, b, vector=True),
        ]

    true = {"counts": [c.count for c in groups], "sums": [c.centred for c in groups]}
    (counts, totals), release = released(("group_means", lower, upper), lambda: parts(budget), true, budget)
    means = [mid + float(t) * grid.step / max(float(n), 1.0) for n, t in zip(counts, totals, strict=True)]
    return release.release([min(max(m, lower), upper) for m in means], budget)  # type: ignore[no-any-return]


def dp_group_variances(
    columns: Sequence[ClampedColumn],
    lower: float,
    upper: float,
    *,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
) -> DpRelease[list[float]]:
    """A noisy sample variance per group, as `custos.privacy.dp.dp_variance` makes one: noisy counts,
    sums and sums of squares of the values less the midpoint, each a vector over the groups."""
    budget = budget_of(epsilon, delta, mechanism, contributions)
    groups = _columns(columns, lower, upper)
    half = (upper - lower) / 2
    centred, squares = groups[0].centred_grid, groups[0].squares_grid

    def parts(b: Budget) -> list[Part]:
        return [
            stated_part("counts", 1, 1.0, b, vector=True),
            stated_part("sums", centred.sum_sensitivity, centred.step, b, vector=True),
            stated_part("sums_of_squares", squares.sum_sensitivity, squares.step, b, vector=True),
        ]

    true = {
        "counts": [c.count for c in groups],
        "sums": [c.centred for c in groups],
        "sums_of_squares": [c.squares for c in groups],
    }
    shape = ("group_variances", lower, upper)
    (counts, totals, totals_sq), release = released(shape, lambda: parts(budget), true, budget)
    variances = []
    for n, total, total_sq in zip(counts, totals, totals_sq, strict=True):
        rows = max(float(n), 2.0)
        s, sq = float(total) * centred.step, float(total_sq) * squares.step
        variances.append(min(max((sq - s * s / rows) / (rows - 1), 0.0), half * half))
    return release.release(variances, budget)  # type: ignore[no-any-return]


class _Groups(list[Any]):
    """What a grouped quantile measurement is invoked on: each group's values (float64, no NaN)."""


@cache
def _groups_space() -> tuple[Any, Any]:
    domain = dpd.user_domain("custos.GroupRows", lambda x: isinstance(x, _Groups))
    return domain, dpme.user_distance("custos.RowsAddedOrRemoved")


def _per_group(inner: Measurement, mechanism: Mechanism) -> Measurement:
    """`inner` run on every group's rows, as one measurement with inner's privacy map (see the module
    docstring: parallel composition over disjoint groups)."""
    measure = dpms.max_divergence() if mechanism == "laplace" else dpms.zero_concentrated_divergence()

    def run(groups: _Groups) -> list[float]:
        return [float(inner(rows)) for rows in groups]

    def privacy_map(d_in: int) -> float:
        return float(inner.map(int(d_in)))  # type: ignore[no-untyped-call]

    return dpm.make_user_measurement(*_groups_space(), measure, run, privacy_map, TO="ExtrinsicObject")


def dp_group_quantiles(
    groups: Sequence[Data],
    lower: float,
    upper: float,
    alphas: Sequence[float],
    *,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
    candidates: int = 1001,
) -> DpRelease[list[list[float]]]:
    """Noisy quantiles of each group's values clamped to [lower, upper] (one list per group, one value
    per alpha), by OpenDP's quantile mechanism over `candidates` evenly spaced points, as
    `custos.privacy.dp.dp_quantiles` gives them for all rows; the budget is split evenly over the
    alphas, and every group gets the whole of each alpha's share."""
    budget = budget_of(epsilon, delta, mechanism, contributions)
    check_bounds(lower, upper)
    check_quantile_args(alphas, candidates)
    if not groups:
        raise InvalidInput("there must be at least one group")
    enable_opendp("honest-but-curious")
    grid = np.linspace(lower, upper, candidates).tolist()

    def part(index: int, alpha: float) -> Part:
        def build(s: float) -> Measurement:
            inner = quantile_measurement(lower, upper, grid, alpha, budget.mechanism, s)
            return _per_group(inner, budget.mechanism)

        return f"q{index}", build, lambda s: s

    shape = ("group_quantiles", lower, upper, tuple(float(a) for a in alphas), candidates)
    release = calibrated(shape, lambda: [part(i, float(a)) for i, a in enumerate(alphas)], budget)
    values = _Groups(_present(g) for g in groups)
    by_alpha = release.run(values)  # one list per alpha, each with one value per group
    per_group = [[float(by_alpha[a][g]) for a in range(len(alphas))] for g in range(len(values))]
    return release.release(per_group, budget)


def _present(data: Data) -> np.ndarray[Any, np.dtype[np.float64]]:
    values = np.asarray(data, dtype=np.float64)
    if values.ndim != 1:
        raise InvalidInput(f"values must be one-dimensional, got shape {values.shape}")
    return values[~np.isnan(values)]
