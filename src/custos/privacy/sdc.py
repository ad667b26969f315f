"""Statistical disclosure control (SDC): the one engine the models' disclosure rules run on, at each
gateway on its own result and again at the orchestrator on pooled cells.

A table is a set of `Cell`s arranged in `Line`s: a line is a row or column whose cells add up to its
`total` (when the total is reported) or to a total a reader may know from elsewhere (when it is not).
Which cells form a table is the model's business (e.g. `custos.computations.stats.disclosure`); the
rules are here:

- primary, small cells: a cell with 0 < count < min_count is suppressed ("fewer than 10 rows");
- primary, dominance: a sum whose n largest contributions (by absolute value) give more than k % of
  the sum of absolute contributions is suppressed like a small cell (`is_dominated`);
- secondary: no suppressed cell may be recoverable by subtraction. A line with exactly one suppressed
  cell gets a second one (the smallest non-zero reported cell, else its zero cells, else its total), and
  a suppressed total with every cell reported gets one suppressed cell. Lines are revisited until no
  rule fires, so a cell suppressed for a row also protects its column (`protect_table`);
- rounding of published counts: to the nearest multiple of N, or OpenSAFELY's midpoint 6
  (`round_count`).

The suppression rules only decide which cells are suppressed; callers drop the values of suppressed
cells. Reasons name a rule and its parameters, never a value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from custos.core.errors import InvalidInput
from custos.privacy.controls import DisclosureRules

SECONDARY_REASON = "secondary suppression: hides another suppressed cell of the same table"


def small_cell_reason(min_count: int) -> str:
    return f"fewer than {min_count} rows"


def dominance_reason(n: int, k: float) -> str:
    return f"dominance: the {n} largest contributions give more than {k:g}% of the sum"


def extremes_reason(min_rows: int) -> str:
    return f"min, max and quantiles need a group of at least {min_rows} rows"


@dataclass(eq=False)
class Cell:
    """One count. `count` is None when it is not known (a site suppressed it)."""

    count: int | None
    suppressed: bool = False
    reason: str | None = None

    @property
    def reported(self) -> int | None:
        """The count as it may be reported: None once suppressed."""
        return None if self.suppressed else self.count

    def suppress(self, reason: str) -> None:
        if not self.suppressed:
            self.suppressed = True
            self.reason = reason


@dataclass(frozen=True)
class Line:
    cells: Sequence[Cell]
    total: Cell | None = None


@dataclass
class Table:
    lines: list[Line] = field(default_factory=list)

    def cells(self) -> list[Cell]:
        seen: dict[int, Cell] = {}
        for line in self.lines:
            for cell in [*line.cells, *([line.total] if line.total is not None else [])]:
                seen.setdefault(id(cell), cell)
        return list(seen.values())


# --- primary suppression ---------------------------------------------------------------------------


def suppress_small(cells: Iterable[Cell], min_count: int) -> None:
    """Primary suppression: every cell with 0 < count < min_count."""
    for cell in cells:
        if cell.count is not None and 0 < cell.count < min_count:
            cell.suppress(small_cell_reason(min_count))


def is_dominated(largest: Sequence[float], total: float, k: float) -> bool:
    """True when `largest` (the n largest absolute contributions to a cell) add up to more than k % of
    `total` (the sum of all absolute contributions). A cell of zeros is not dominated."""
    return total > 0 and math.fsum(largest) > k / 100 * total


# --- secondary suppression -------------------------------------------------------------------------


def protect_line(line: Line) -> bool:
    """Secondary suppression for one line. Returns True when it suppressed something."""
    hidden = sum(1 for c in line.cells if c.suppressed)
    total_hidden = line.total is not None and line.total.suppressed
    exposed = (hidden == 0 and total_hidden) or (hidden == 1 and not total_hidden)
    if not exposed:
        return False
    reported = [c for c in line.cells if not c.suppressed]
    nonzero = sorted((c for c in reported if c.count), key=lambda c: c.count or 0)
    if nonzero:
        nonzero[0].suppress(SECONDARY_REASON)
        return True
    if reported:
        for cell in reported:
            cell.suppress(SECONDARY_REASON)
        return True
    if line.total is not None and not line.total.suppressed:
        line.total.suppress(SECONDARY_REASON)
        return True
    return False


def protect_table(table: Table, min_count: int) -> None:
    """Primary then secondary suppression over every line, until no rule fires."""
    cells = table.cells()
    suppress_small(cells, min_count)
    # Each pass that changes anything suppresses at least one more cell, so this ends.
    for _ in range(len(cells) + 1):
        changed = False
        for line in table.lines:
            changed = protect_line(line) or changed
        if not changed:
            return


# --- rounding ---------------------------------------------------------------------------------------


def _count(value: int, where: str) -> int:
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


def round_count(count: int | None, rules: DisclosureRules) -> int | None:
    """A published count as the policy's rounding publishes it; a suppressed one (None) stays None."""
    if count is None or rules.rounding == "none":
        return count
    if rules.rounding == "midpoint6":
        return midpoint6(count)
    return round_to_nearest(count, rules.round_to)
