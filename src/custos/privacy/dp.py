"""Differentially private statistics of one site's data: exact aggregates computed with NumPy, each
released through one OpenDP measurement (see `mechanisms` for how parts are composed and calibrated
to ε and δ).

Neighbouring datasets differ by one person, who adds or removes at most `contributions` rows (1 by
default). A release is computed in two steps:

1. **Aggregate** (`ClampedColumn`, `bin_counts`): one NumPy pass over the column. Missing values (NaN)
   are dropped; each value is clamped to the public bounds [lower, upper] (for a mean or a variance,
   the value less the bounds' midpoint is clamped to [-half, half]: the same clamp, shifted) and put
   in integer units of a power-of-two `Grid` step (2**-30 of the bounds' magnitude, well below any
   noise). Sums of units are exact integers, so floating-point rounding cannot make one row move a
   sum by more than stated, whatever the number of rows (OpenDP's own float sum instead widens its
   sensitivity by a rounding term and keeps at most 2**20 rows).
2. **Release**: the aggregates go to one OpenDP measurement, a composition of parts. Each part is a
   user transformation (aggregates -> one integer, or a vector of counts) with a *stated* stability
   map, followed by OpenDP's discrete Laplace or discrete Gaussian noise; OpenDP calibrates the scale
   and samples the noise. The stated sensitivities, for `contributions` = c rows per person:

   - count: one row moves it by 1, so c;
   - sum of values clamped to [L, U]: one row moves it by at most max(|L|, |U|); we state
     c * max(U - L, |L|, |U|), what OpenDP states for its own float sum of unknown length, so the
     noise is the same as when OpenDP summed the rows (for L <= 0 <= U this is U - L, twice the
     least bound);
   - sum of squares of values clamped to [-h, h]: the squares are in [0, h²], so c * h²;
   - counts of disjoint bins (histogram, categories): one row is in at most one bin, so c rows move
     the vector by at most c in L1, and by at most c in L2 (all in one bin).

   Stating a stability map is what OpenDP's "honest-but-curious" feature is for; the maps above are
   the whole of what this module asserts. Everything else (composition, the zCDP to (ε, δ)
   conversion, calibration, sampling) is OpenDP's.

Calibrated measurements are kept in the process by release shape (kind, bounds, bins) and budget
(`mechanisms.calibrated`), so later rounds and later jobs in the same runtime pay no calibration.
Quantiles still use OpenDP's exponential mechanism on the clamped rows. Noisy counts, sums and
histograms may be negative: they are left unbiased.

This module loads OpenDP's native library, so the `custos.privacy` package does not import it (parsing a
policy must not): import it as `from custos.privacy.dp import dp_count`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from opendp import domains as dpd
from opendp import measurements as dpm
from opendp import measures as dpms
from opendp import metrics as dpme
from opendp import transformations as dpt
from opendp.mod import Measurement

from custos.core.errors import InvalidInput
from custos.privacy.controls import Mechanism, split_budget
from custos.privacy.mechanisms import (
    Budget,
    DpRelease,
    Part,
    budget_of,
    calibrated,
    enable_opendp,
    float_rows,
)

__all__ = [
    "ClampedColumn",
    "DpRelease",
    "Grid",
    "bin_counts",
    "dp_bin_counts",
    "dp_count",
    "dp_histogram",
    "dp_mean",
    "dp_quantiles",
    "dp_sum",
    "dp_variance",
    "split_budget",
]

Data = Sequence[float] | npt.NDArray[np.float64]

GRID_BITS = 30
# Sums of at most this many rows of at most 2**30 units each stay within int64.
MAX_ROWS = 1 << 32
# Chunks bound the temporaries of the aggregation pass (a full-size copy of 10 M rows is 80 MB).
_CHUNK = 1 << 20


def check_bounds(lower: float, upper: float) -> None:
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise InvalidInput(f"bounds must be finite with lower < upper, got [{lower}, {upper}]")


def _values(data: Data) -> npt.NDArray[np.float64]:
    """The values as a float64 vector without NaN; no copy when there is none to drop."""
    values = np.asarray(data, dtype=np.float64)
    if values.ndim != 1:
        raise InvalidInput(f"values must be one-dimensional, got shape {values.shape}")
    missing = np.isnan(values)
    return values[~missing] if missing.any() else values


@dataclass(frozen=True)
class Grid:
    """Integer units for values within [lower, upper]: x becomes round(x / step), kept within
    [low, high] = [ceil(lower / step), floor(upper / step)], so that units * step stays in the bounds.
    The step is a power of two (dividing by it is exact), 2**-GRID_BITS of the bounds' magnitude."""

    step: float
    low: int
    high: int

    @classmethod
    def of(cls, lower: float, upper: float) -> Grid:
        magnitude = max(abs(lower), abs(upper))
        step = math.ldexp(1.0, math.frexp(magnitude)[1] - GRID_BITS)
        return cls(step, math.ceil(lower / step), math.floor(upper / step))

    @property
    def sum_sensitivity(self) -> int:
        """Units one row moves a sum by, as stated (see the module docstring): max(U - L, |L|, |U|)."""
        return max(self.high - self.low, abs(self.low), abs(self.high))

    def total(self, clamped: npt.NDArray[np.float64]) -> int:
        """The exact sum, in units, of values already within the bounds."""
        units = np.clip(np.rint(clamped / self.step), self.low, self.high)
        return int(units.astype(np.int64).sum())


@dataclass(frozen=True)
class ClampedColumn:
    """Exact aggregates of one column's non-missing values, clamped to [lower, upper], from one pass:
    the count, the sum (units of `grid`), and the sum and sum of squares of the values less the
    midpoint, clamped to [-half, half] (units of `centred_grid` and `squares_grid`)."""

    lower: float
    upper: float
    count: int
    total: int
    centred: int
    squares: int

    @classmethod
    def of(cls, data: Data, lower: float, upper: float) -> ClampedColumn:
        check_bounds(lower, upper)
        values = np.asarray(data, dtype=np.float64)
        if values.ndim != 1:
            raise InvalidInput(f"values must be one-dimensional, got shape {values.shape}")
        mid, half = (lower + upper) / 2, (upper - lower) / 2
        plain, centred, squares = Grid.of(lower, upper), Grid.of(-half, half), Grid.of(0.0, half * half)
        count = total = centred_total = squares_total = 0
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            missing = np.isnan(chunk)
            if missing.any():
                chunk = chunk[~missing]
            count += len(chunk)
            total += plain.total(np.clip(chunk, lower, upper))
            shifted = np.clip(chunk - mid, -half, half)
            centred_total += centred.total(shifted)
            squares_total += squares.total(np.clip(shifted * shifted, 0.0, half * half))
        if count > MAX_ROWS:
            raise InvalidInput(f"a DP release covers at most {MAX_ROWS} rows")
        return cls(lower, upper, count, total, centred_total, squares_total)

    @property
    def grid(self) -> Grid:
        return Grid.of(self.lower, self.upper)

    @property
    def centred_grid(self) -> Grid:
        half = (self.upper - self.lower) / 2
        return Grid.of(-half, half)

    @property
    def squares_grid(self) -> Grid:
        half = (self.upper - self.lower) / 2
        return Grid.of(0.0, half * half)


def bin_counts(values: Data, edges: Sequence[float]) -> list[int]:
    """Counts per bin with numpy.histogram's semantics (half-open bins, the last one closed; values
    outside the edges and NaN are not counted), by a binary search of each value among the edges."""
    data = np.asarray(values, dtype=np.float64)
    bounds = np.asarray(edges, dtype=np.float64)
    bins = len(bounds) - 1
    index = np.searchsorted(bounds, data, side="right") - 1
    index[data == bounds[-1]] = bins - 1
    inside = (index >= 0) & (index < bins)  # NaN sorts after every edge: index = bins, not counted
    return [int(c) for c in np.bincount(index[inside], minlength=bins)]


# --- releases of aggregates through OpenDP -----------------------------------------------------------


class _Aggregates(dict[str, Any]):
    """What a release's measurement is invoked on: each part's exact aggregate, by part name."""


@cache
def _aggregate_space() -> tuple[Any, Any]:
    """The aggregates of one dataset, neighbouring when rows are added or removed (the distance is a
    number of rows): the input of every part's stated-stability transformation."""
    domain = dpd.user_domain("custos.Aggregates", lambda x: isinstance(x, _Aggregates))
    return domain, dpme.user_distance("custos.RowsAddedOrRemoved")


def stated_part(name: str, sensitivity: int, step: float, budget: Budget, *, vector: bool = False) -> Part:
    """A part releasing the integer aggregate `name` (or vector of counts), which one row moves by at
    most `sensitivity` (in L1, or L2 for a vector under the Gaussian mechanism), with noise of scale
    multiplier times its sensitivity at `contributions`. Its reported scale is in value units."""
    laplace = budget.mechanism == "laplace"
    if vector:
        metric = dpme.l1_distance(T="i64") if laplace else dpme.l2_distance(T="i64")
        space = dpd.vector_domain(dpd.atom_domain(T="i64")), metric
    else:
        space = dpd.atom_domain(T="i64"), dpme.absolute_distance(T="i64")

    def pick(aggregates: _Aggregates) -> Any:
        return aggregates[name]

    def stability(d_in: int) -> int:
        return int(d_in) * sensitivity

    stable = dpt.make_user_transformation(*_aggregate_space(), *space, pick, stability)
    add_noise = dpm.then_laplace if laplace else dpm.then_gaussian
    at_contributions = budget.contributions * sensitivity

    def build(s: float) -> Measurement:
        return stable >> add_noise(scale=s * at_contributions)  # type: ignore[no-any-return]

    return name, build, lambda s: s * at_contributions * step


def released(
    shape: tuple[Any, ...],
    parts: Callable[[], Sequence[Part]],
    aggregates: Mapping[str, Any],
    budget: Budget,
) -> tuple[list[Any], Any]:
    # "honest-but-curious": OpenDP accepts user transformations (our stated stability maps) only so.
    enable_opendp("honest-but-curious")
    release = calibrated(shape, parts, budget)
    return release.run(_Aggregates(aggregates)), release


def dp_count(
    data: int | np.integer[Any] | Data,
    *,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
) -> DpRelease[int]:
    """A noisy count of rows: of `data`'s non-missing rows, or of a true count computed elsewhere (an
    int). Integer noise: discrete Laplace of scale contributions / ε, or discrete Gaussian."""
    budget = budget_of(epsilon, delta, mechanism, contributions)
    count = int(data) if isinstance(data, int | np.integer) else len(_values(data))
    parts = lambda: [stated_part("count", 1, 1.0, budget)]  # noqa: E731
    (value,), release = released(("count",), parts, {"count": count}, budget)
    return release.release(int(value), budget)  # type: ignore[no-any-return]


def _column(values: Data | ClampedColumn, lower: float, upper: float) -> ClampedColumn:
    check_bounds(lower, upper)
    if isinstance(values, ClampedColumn):
        if (values.lower, values.upper) != (lower, upper):
            raise InvalidInput(
                f"the aggregates are clamped to [{values.lower}, {values.upper}], not [{lower}, {upper}]"
            )
        return values
    return ClampedColumn.of(values, lower, upper)


def dp_sum(
    values: Data | ClampedColumn,
    lower: float,
    upper: float,
    *,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
) -> DpRelease[float]:
    """A noisy sum of the values clamped to [lower, upper] (noise scale contributions *
    max(|lower|, |upper|, upper - lower) / ε under Laplace). `values` may be the column's
    `ClampedColumn`, so that several releases share one pass over it."""
    budget = budget_of(epsilon, delta, mechanism, contributions)
    column = _column(values, lower, upper)
    grid = column.grid
    parts = lambda: [stated_part("sum", grid.sum_sensitivity, grid.step, budget)]  # noqa: E731
    (total,), release = released(("sum", lower, upper), parts, {"sum": column.total}, budget)
    return release.release(float(total) * grid.step, budget)  # type: ignore[no-any-return]


def dp_mean(
    values: Data | ClampedColumn,
    lower: float,
    upper: float,
    *,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
) -> DpRelease[float]:
    """A noisy mean of the values clamped to [lower, upper], clipped to the bounds: the midpoint plus a
    noisy sum of the values less the midpoint over a noisy count, half the budget each. Centring keeps
    that sum small, so the count's noise barely moves the ratio."""
    budget = budget_of(epsilon, delta, mechanism, contributions)
    column = _column(values, lower, upper)
    mid, grid = (lower + upper) / 2, column.centred_grid

    def parts() -> list[Part]:
        return [
            stated_part("count", 1, 1.0, budget),
            stated_part("sum", grid.sum_sensitivity, grid.step, budget),
        ]

    true = {"count": column.count, "sum": column.centred}
    (n, total), release = released(("mean", lower, upper), parts, true, budget)
    mean = mid + float(total) * grid.step / max(float(n), 1.0)
    return release.release(min(max(mean, lower), upper), budget)  # type: ignore[no-any-return]


def dp_variance(
    values: Data | ClampedColumn,
    lower: float,
    upper: float,
    *,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
) -> DpRelease[float]:
    """A noisy sample variance (ddof=1) of the values clamped to [lower, upper], from a noisy count, sum
    and sum of squares of the values less the midpoint, a third of the budget each. Clipped to
    [0, (upper - lower)² / 4], the largest variance of values within the bounds."""
    budget = budget_of(epsilon, delta, mechanism, contributions)
    column = _column(values, lower, upper)
    half = (upper - lower) / 2
    centred, squares = column.centred_grid, column.squares_grid

    def parts() -> list[Part]:
        return [
            stated_part("count", 1, 1.0, budget),
            stated_part("sum", centred.sum_sensitivity, centred.step, budget),
            stated_part("sum_of_squares", squares.sum_sensitivity, squares.step, budget),
        ]

    true = {"count": column.count, "sum": column.centred, "sum_of_squares": column.squares}
    (n, total, total_sq), release = released(("variance", lower, upper), parts, true, budget)
    n = max(float(n), 2.0)
    total, total_sq = float(total) * centred.step, float(total_sq) * squares.step
    variance = (total_sq - total * total / n) / (n - 1)
    return release.release(min(max(variance, 0.0), half * half), budget)  # type: ignore[no-any-return]


def dp_bin_counts(
    counts: Sequence[int],
    *,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
) -> DpRelease[list[int]]:
    """Noisy counts of bins that partition the rows (each row is counted in at most one bin, and the
    bins are public): each count gets the noise of one count."""
    budget = budget_of(epsilon, delta, mechanism, contributions)
    if not counts:
        raise InvalidInput("there must be at least one bin")
    parts = lambda: [stated_part("counts", 1, 1.0, budget, vector=True)]  # noqa: E731
    true = {"counts": [int(c) for c in counts]}
    (noisy,), release = released(("counts", len(counts)), parts, true, budget)
    return release.release([int(c) for c in noisy], budget)  # type: ignore[no-any-return]


def dp_histogram(
    values: Sequence[Any] | npt.NDArray[Any],
    *,
    edges: Sequence[float] | None = None,
    categories: Sequence[str] | None = None,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
) -> DpRelease[list[int]]:
    """Noisy counts per bin (`edges`, numpy.histogram's bins: [a, b) and the last [a, b]; values
    outside the edges are not counted) or per category (`categories`, compared as text; other values
    are not counted). The bins are public and a row is in one bin, so each count gets the noise of
    one count."""
    budget_of(epsilon, delta, mechanism, contributions)
    if (edges is None) == (categories is None):
        raise InvalidInput("give exactly one of edges and categories")
    if edges is not None:
        bounds = [float(e) for e in edges]
        if len(bounds) < 2 or not all(math.isfinite(e) for e in bounds) or np.any(np.diff(bounds) <= 0):
            raise InvalidInput("edges must be at least 2 finite, strictly increasing numbers")
        data = np.asarray(values, dtype=np.float64)
        if data.ndim != 1:
            raise InvalidInput(f"values must be one-dimensional, got shape {data.shape}")
        counts = bin_counts(data, bounds)
    else:
        assert categories is not None
        labels = [str(c) for c in categories]
        if not labels or len(set(labels)) != len(labels):
            raise InvalidInput("categories must be a non-empty list without repeats")
        index = {label: i for i, label in enumerate(labels)}
        counts = [0] * len(labels)
        for value in values:
            if value is not None and (i := index.get(str(value))) is not None:
                counts[i] += 1
    return dp_bin_counts(
        counts, epsilon=epsilon, mechanism=mechanism, delta=delta, contributions=contributions
    )


def dp_quantiles(
    values: Data,
    lower: float,
    upper: float,
    alphas: Sequence[float],
    *,
    epsilon: float,
    mechanism: Mechanism = "laplace",
    delta: float = 0.0,
    contributions: int = 1,
    candidates: int = 1001,
) -> DpRelease[list[float]]:
    """Noisy quantiles of the values clamped to [lower, upper], one per alpha in [0, 1], each chosen
    among `candidates` evenly spaced points by OpenDP's exponential mechanism (pure DP under the
    laplace setting; zCDP, then (ε, δ), under gaussian). The budget is split evenly over the alphas."""
    budget = budget_of(epsilon, delta, mechanism, contributions)
    check_bounds(lower, upper)
    check_quantile_args(alphas, candidates)
    enable_opendp()
    grid = np.linspace(lower, upper, candidates).tolist()

    def part(index: int, alpha: float) -> Part:
        def build(s: float) -> Measurement:
            return quantile_measurement(lower, upper, grid, alpha, budget.mechanism, s)

        return f"q{index}", build, lambda s: s

    shape = ("quantiles", lower, upper, tuple(float(a) for a in alphas), candidates)
    release = calibrated(shape, lambda: [part(i, float(a)) for i, a in enumerate(alphas)], budget)
    return release.release([float(p) for p in release.run(_values(values))], budget)


def check_quantile_args(alphas: Sequence[float], candidates: int) -> None:
    if not alphas or not all(0 <= a <= 1 for a in alphas):
        raise InvalidInput(f"alphas must be a non-empty list of numbers in [0, 1], got {list(alphas)}")
    if not 2 <= candidates <= 100_000:
        raise InvalidInput(f"candidates must be between 2 and 100000, got {candidates}")


def quantile_measurement(
    lower: float, upper: float, grid: list[float], alpha: float, mechanism: Mechanism, scale: float
) -> Measurement:
    """OpenDP's quantile mechanism on the rows of one float column clamped to [lower, upper]: the
    candidates of `grid` scored by how far each is from the `alpha`-quantile in rank, one chosen by
    report-noisy-max at `scale` (pure DP under laplace, zCDP under gaussian)."""
    measure = dpms.max_divergence() if mechanism == "laplace" else dpms.zero_concentrated_divergence()
    clamped = float_rows() >> dpt.then_clamp((lower, upper))
    return clamped >> dpm.then_private_quantile(measure, candidates=grid, alpha=alpha, scale=scale)  # type: ignore[no-any-return]
