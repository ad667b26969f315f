"""Small-cell suppression over tables of counts (statistical disclosure control).

A table is a set of `Cell`s arranged in `Line`s: a line is a row or column whose cells add up to its
`total` (when the total is reported) or to a total a reader may know from elsewhere (when it is not).
Two rules, applied at each gateway to its own result and again at the orchestrator to pooled cells:

- primary: a cell with 0 < count < min_count is suppressed ("fewer than 10 rows");
- secondary: no suppressed cell may be recoverable by subtraction. A line with exactly one suppressed
  cell gets a second one (the smallest non-zero reported cell, else its zero cells, else its total), and
  a suppressed total with every cell reported gets one suppressed cell. Lines are revisited until no
  rule fires, so a cell suppressed for a row also protects its column.

The rules only decide which cells are suppressed; callers drop the values of suppressed cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SECONDARY_REASON = "secondary suppression: hides another suppressed cell of the same table"


def small_cell_reason(min_count: int) -> str:
    return f"fewer than {min_count} rows"


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


def suppress_small(cells: Iterable[Cell], min_count: int) -> None:
    """Primary suppression: every cell with 0 < count < min_count."""
    for cell in cells:
        if cell.count is not None and 0 < cell.count < min_count:
            cell.suppress(small_cell_reason(min_count))


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
