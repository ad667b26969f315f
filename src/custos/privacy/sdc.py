"""Statistical disclosure control (SDC) over tables of counts and sums held as plain Python values.

A table is an `SdcTable`: values by key, where a suppressed cell's value is None and `reasons` says why
(a rule and its parameters, never a value). Cells that add up are described by `Line`s: the parts of a
line add up to its total, and the total is either a key of the table or any other key, which stands
for a total the reader knows from elsewhere (the dataset's row count, say). A 2-D table keys its cells
`(row, col)`, its row totals `(row, None)`, its column totals `(None, col)` and its grand total
`(None, None)` (`grid_table`, `grid_lines`).

The rules, applied in this order (`protect_counts` applies them all to a table of counts):
1. primary: `apply_min_count`, `dominance`, `suppress_small_group_extremes`;
2. secondary: `secondary_suppress` (and `secondary_suppress_1d` / `_2d`) suppresses more cells until
   `recoverable_cells` finds no suppressed cell that the published values determine;
3. rounding: `round_counts` (`round_to_nearest` or `midpoint6`), then optionally `recompute_totals`,
   which makes each published total the sum of its line's published parts (OpenSAFELY's convention:
   "column and row totals are the sum of the rounded counts").

`recoverable_cells` decides exact linear recovery: a suppressed cell is recoverable when every
assignment of the suppressed cells that agrees with the published values and the lines gives it the
same value. It does not model bounds an attacker may also know (counts are never negative); that is
why secondary suppression prefers non-zero cells: a zero suppressed next to a known structural zero
hides nothing.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from custos.core.errors import InvalidInput
from custos.privacy.controls import DisclosureRules, Rounding

K = TypeVar("K", bound=Hashable)
G = TypeVar("G", bound=Hashable)
Value = int | float
GridKey = tuple[int | None, int | None]

SECONDARY_REASON: Final = "secondary suppression: hides another suppressed cell of the same table"
GROUP_SUPPRESSED_REASON: Final = "the group's row count is suppressed"


def small_cell_reason(min_count: int) -> str:
    return f"fewer than {min_count} rows"


def dominance_reason(n: int, k: float) -> str:
    return f"dominance: the {n} largest contributions give more than {k:g}% of the sum"


def extremes_reason(min_rows: int) -> str:
    return f"min, max and quantiles need a group of at least {min_rows} rows"


@dataclass(frozen=True)
class SdcTable(Generic[K]):
    """Cells after disclosure control. A value is None exactly when the cell is suppressed, and then
    `reasons[key]` says which rule suppressed it."""

    values: Mapping[K, Value | None]
    reasons: Mapping[K, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in self.values.items():
            if (value is None) != (key in self.reasons):
                raise InvalidInput(f"cell {key!r}: a cell is suppressed (None) exactly when it has a reason")
        if unknown := set(self.reasons) - set(self.values):
            raise InvalidInput(f"reasons name cells that are not in the table: {sorted(map(repr, unknown))}")

    def suppressed(self) -> list[K]:
        return [key for key, value in self.values.items() if value is None]

    def published(self) -> dict[K, Value]:
        return {key: value for key, value in self.values.items() if value is not None}

    def with_suppressed(self, keys: Iterable[K], reason: str) -> SdcTable[K]:
        """A copy with `keys` suppressed; a cell already suppressed keeps its first reason."""
        hide = {key for key in keys if self.values[key] is not None}
        if not hide:
            return self
        values = {key: (None if key in hide else value) for key, value in self.values.items()}
        return SdcTable(values, {**self.reasons, **dict.fromkeys(hide, reason)})

    def with_values(self, changed: Mapping[K, Value]) -> SdcTable[K]:
        """A copy with new values for published cells (rounding)."""
        if hidden := [key for key in changed if self.values[key] is None]:
            raise InvalidInput(f"cannot give a value to suppressed cells {hidden!r}")
        return SdcTable({**self.values, **changed}, dict(self.reasons))

    def notes(self) -> list[str]:
        """One line per suppressed cell, naming the cell and the rule, never the value."""
        return [f"{key!r}: {self.reasons[key]}" for key in self.suppressed()]


def as_table(cells: Mapping[K, Value] | SdcTable[K]) -> SdcTable[K]:
    if isinstance(cells, SdcTable):
        return cells
    if missing := [key for key, value in cells.items() if value is None]:
        raise InvalidInput(f"cells {missing!r} have no value; pass an SdcTable with a reason for each")
    return SdcTable(dict(cells))


# --- primary suppression ---------------------------------------------------------------------------


def apply_min_count(cells: Mapping[K, Value] | SdcTable[K], min_count: int) -> SdcTable[K]:
    """Suppress every count of 1 to min_count - 1 rows. Zero is published: it is not a person."""
    if min_count < 1:
        raise InvalidInput(f"min_count must be at least 1, got {min_count}")
    table = as_table(cells)
    small = [key for key, value in table.published().items() if 0 < value < min_count]
    return table.with_suppressed(small, small_cell_reason(min_count))


def is_dominated(largest: Sequence[float], total: float, k: float) -> bool:
    """True when `largest` (the n largest absolute contributions to a cell) add up to more than k % of
    `total` (the sum of all absolute contributions). A cell of zeros is not dominated."""
    return total > 0 and math.fsum(largest) > k / 100 * total


def dominance(
    contributions: Mapping[K, Sequence[float] | npt.NDArray[np.float64]], n: int, k: float
) -> SdcTable[K]:
    """Sums per cell, with the (n, k) rule: a cell whose n largest contributors (by absolute value)
    give more than k % of the sum of absolute contributions is suppressed. A cell of at most n
    contributors is always suppressed: each of them could subtract their own value."""
    if n < 1 or not 0 < k < 100:
        raise InvalidInput(f"dominance needs n >= 1 and 0 < k < 100, got n={n}, k={k}")
    values: dict[K, Value | None] = {}
    dominated = []
    for key, parts in contributions.items():
        raw = np.asarray(parts)
        size = np.abs(raw.astype(np.float64))
        largest = np.sort(size)[-n:]
        if np.issubdtype(raw.dtype, np.integer):
            values[key] = int(raw.sum())
        else:
            values[key] = math.fsum(raw.astype(np.float64).tolist())
        if is_dominated(largest.tolist(), math.fsum(size.tolist()), k):
            dominated.append(key)
    return SdcTable(values).with_suppressed(dominated, dominance_reason(n, k))


def suppress_small_group_extremes(
    counts: Mapping[G, int | None], extremes: Mapping[G, Mapping[str, Value]], min_rows: int
) -> SdcTable[tuple[G, str]]:
    """Min, max and quantiles per group, keyed (group, statistic). Those of a group with fewer than
    `min_rows` rows, or whose count is suppressed (None), are suppressed: in a small group an extreme
    or a quantile is one person's value."""
    values: dict[tuple[G, str], Value | None] = {}
    small, hidden = [], []
    for group, statistics in extremes.items():
        if group not in counts:
            raise InvalidInput(f"group {group!r} has extremes but no row count")
        for name, value in statistics.items():
            values[(group, name)] = value
            count = counts[group]
            if count is None:
                hidden.append((group, name))
            elif count < min_rows:
                small.append((group, name))
    table = SdcTable(values).with_suppressed(hidden, GROUP_SUPPRESSED_REASON)
    return table.with_suppressed(small, extremes_reason(min_rows))


# --- lines and recovery ------------------------------------------------------------------------------


class _KnownTotal:
    def __repr__(self) -> str:
        return "KNOWN_TOTAL"


KNOWN_TOTAL: Final = _KnownTotal()
"""The total of a line that is not in the table but that the reader knows (e.g. the row count)."""


@dataclass(frozen=True)
class Line:
    """Cells that add up: sum(parts) == total. A total that is not a key of the table is known."""

    parts: tuple[Hashable, ...]
    total: Hashable = KNOWN_TOTAL


def recoverable_cells(cells: SdcTable[K], lines: Sequence[Line]) -> list[K]:
    """The suppressed cells whose value the published values and the lines determine.

    Unknowns are the suppressed cells; each line is one equation over them (published values and
    known totals move to the constant side). A cell is determined exactly when its unit vector lies in
    the row space of the equations, i.e. when every vector of their null space is zero at that cell.
    """
    unknown = cells.suppressed()
    if not unknown:
        return []
    index = {key: i for i, key in enumerate(unknown)}
    rows = []
    for line in lines:
        row = np.zeros(len(unknown))
        for part in line.parts:
            if part in index:
                row[index[part]] += 1.0
        if line.total in index:
            row[index[line.total]] -= 1.0
        if row.any():
            rows.append(row)
    if not rows:
        return []
    equations = np.array(rows)
    _, singular, vt = np.linalg.svd(equations)
    tolerance = singular.max() * max(equations.shape) * np.finfo(np.float64).eps
    rank = int((singular > tolerance).sum())
    null_space = vt[rank:]
    if null_space.shape[0] == 0:
        return list(unknown)
    free = np.abs(null_space).max(axis=0) > 1e-9
    return [key for key in unknown if not free[index[key]]]


def _line_keys(lines: Sequence[Line], key: Hashable) -> list[Hashable]:
    found: list[Hashable] = []
    for line in lines:
        if key == line.total or key in line.parts:
            found += [*line.parts, line.total]
    return found


def secondary_suppress(
    cells: Mapping[K, Value] | SdcTable[K], lines: Sequence[Line], *, reason: str = SECONDARY_REASON
) -> SdcTable[K]:
    """Suppress further cells until no suppressed cell is recoverable from the published values.

    Greedy: while a suppressed cell is recoverable, suppress one published cell on its lines: the one
    that leaves the fewest recoverable cells, then parts before totals, non-zero before zero, smallest
    first. When its lines offer none, any published cell that hides it. A cell that equals a total the
    reader knows cannot be hidden by suppression and is left recoverable (check `recoverable_cells`).
    """
    table = as_table(cells)
    totals = {line.total for line in lines}
    hopeless: set[K] = set()
    while True:
        exposed = [key for key in recoverable_cells(table, lines) if key not in hopeless]
        if not exposed:
            return table
        target = exposed[0]
        published = table.published()
        on_lines = set(_line_keys(lines, target))
        choices = [key for key in published if key in on_lines]
        if not choices:
            choices = [key for key in published if target not in _recoverable_after(table, key, lines)]
        if not choices:
            hopeless.add(target)
            continue

        def cost(key: K, table: SdcTable[K] = table) -> tuple[int, bool, bool, float]:
            value = table.values[key]
            assert value is not None  # choices are published cells
            return (len(_recoverable_after(table, key, lines)), key in totals, value == 0, abs(value))

        table = table.with_suppressed([min(choices, key=cost)], reason)


def _recoverable_after(table: SdcTable[K], key: K, lines: Sequence[Line]) -> list[K]:
    return recoverable_cells(table.with_suppressed([key], SECONDARY_REASON), lines)


def secondary_suppress_1d(
    cells: Mapping[K, Value] | SdcTable[K], *, total: Hashable = KNOWN_TOTAL
) -> SdcTable[K]:
    """One line of cells adding up to `total`: a key of `cells` (then it may be suppressed too, when
    no other cell can be), or KNOWN_TOTAL when the reader knows the total from elsewhere."""
    table = as_table(cells)
    return secondary_suppress(table, [Line(tuple(k for k in table.values if k != total), total)])


def grid_table(matrix: Sequence[Sequence[int]]) -> dict[GridKey, int]:
    """A 2-D table of counts with its margins: cells (i, j), row totals (i, None), column totals
    (None, j) and the grand total (None, None)."""
    rows = [list(row) for row in matrix]
    if not rows or any(len(row) != len(rows[0]) for row in rows) or not rows[0]:
        raise InvalidInput("a 2-D table needs at least one row and one column, all rows the same length")
    table: dict[GridKey, int] = {}
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            table[(i, j)] = int(value)
        table[(i, None)] = sum(int(v) for v in row)
    for j in range(len(rows[0])):
        table[(None, j)] = sum(int(row[j]) for row in rows)
    table[(None, None)] = sum(table[(i, None)] for i in range(len(rows)))
    return table


def grid_lines(n_rows: int, n_cols: int) -> list[Line]:
    """Each row adds up to its row total, each column to its column total, and the row totals and the
    column totals each add up to the grand total. Margins absent from a table are known totals."""
    lines = [Line(tuple((i, j) for j in range(n_cols)), (i, None)) for i in range(n_rows)]
    lines += [Line(tuple((i, j) for i in range(n_rows)), (None, j)) for j in range(n_cols)]
    lines.append(Line(tuple((i, None) for i in range(n_rows)), (None, None)))
    lines.append(Line(tuple((None, j) for j in range(n_cols)), (None, None)))
    return lines


def grid_shape(keys: Iterable[GridKey]) -> tuple[int, int]:
    keys = list(keys)
    n_rows = 1 + max((i for i, _ in keys if i is not None), default=-1)
    n_cols = 1 + max((j for _, j in keys if j is not None), default=-1)
    return n_rows, n_cols


def secondary_suppress_2d(cells: Mapping[GridKey, Value] | SdcTable[GridKey]) -> SdcTable[GridKey]:
    """Secondary suppression over a 2-D table keyed as `grid_table` keys it."""
    table = as_table(cells)
    return secondary_suppress(table, grid_lines(*grid_shape(table.values)))


# --- rounding ---------------------------------------------------------------------------------------


def _count(value: Value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{where}: rounding applies to counts (integers >= 0), got {value!r}")
    return value


def round_to_nearest(count: int, base: int) -> int:
    """The nearest multiple of `base`; a count half-way between two multiples rounds up."""
    if base < 1:
        raise InvalidInput(f"round_to must be at least 1, got {base}")
    return (_count(count, "count") + base // 2) // base * base


def midpoint6(count: int) -> int:
    """OpenSAFELY's midpoint 6 rounding: 0 stays 0, 1-6 -> 3, 7-12 -> 9, 13-18 -> 15, ... i.e.
    ceil(n / 6) * 6 - 3 for n > 0 (docs.opensafely.org/releasing-files, "Midpoint 6 rounding", after
    the R function `roundmid_any(x, to=6)` given there). Unbiased, and zero stays zero."""
    n = _count(count, "count")
    return 0 if n == 0 else -(-n // 6) * 6 - 3


def round_counts(
    cells: Mapping[K, Value] | SdcTable[K], rounding: Rounding, round_to: int = 5
) -> SdcTable[K]:
    """Round every published count; suppressed cells stay suppressed."""
    table = as_table(cells)
    if rounding == "none":
        return table
    published = table.published()
    for key, value in published.items():
        _count(value, f"cell {key!r}")
    if rounding == "nearest":
        return table.with_values({k: round_to_nearest(int(v), round_to) for k, v in published.items()})
    return table.with_values({k: midpoint6(int(v)) for k, v in published.items()})


def recompute_totals(cells: SdcTable[K], lines: Sequence[Line]) -> SdcTable[K]:
    """Make each published total that is in the table the sum of its line's published parts, line by
    line in order (so `grid_lines` makes the grand total the sum of the recomputed column totals)."""
    values: dict[Hashable, Value | None] = {key: value for key, value in cells.values.items()}
    for line in lines:
        if values.get(line.total) is not None:
            values[line.total] = sum(v for p in line.parts if (v := values.get(p)) is not None)
    return SdcTable({key: values[key] for key in cells.values}, dict(cells.reasons))


def protect_counts(
    counts: Mapping[K, Value] | SdcTable[K], lines: Sequence[Line], rules: DisclosureRules
) -> SdcTable[K]:
    """All the count rules of a policy on one table: min count, secondary suppression, rounding and,
    when the policy asks, totals recomputed from the rounded cells."""
    table = secondary_suppress(apply_min_count(counts, rules.min_count), lines)
    table = round_counts(table, rules.rounding, rules.round_to)
    return recompute_totals(table, lines) if rules.totals_from_cells else table
