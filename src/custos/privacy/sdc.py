"""Statistical disclosure control (SDC): the one engine the models' disclosure rules run on, at each
gateway on its own result and again at the orchestrator on pooled cells.

A table is a set of `Cell`s arranged in `Line`s: a line is a row or column whose cells add up to its
`total`. A total may be a cell of the table (published, or suppressed like any other), or left out
(`total=None`): then it is a figure the reader may know from elsewhere (another job, the dataset's
row count). A cell marked `known` is such a figure too. Which cells form a table, and which of its
margins add up to what, is the model's business (e.g. `custos.computations.stats.disclosure`, which
gives nulls and values outside histogram edges cells of their own so that every margin adds up); the
rules are here:

- primary, small cells: a cell with 0 < count < min_count is suppressed ("fewer than 10 rows"). This
  holds for known totals as well: one that is small is suppressed wherever it is published, so the
  reader does not know it;
- primary, dominance: a sum whose n largest contributions (by absolute value) give more than k % of
  the sum of absolute contributions is suppressed like a small cell (`is_dominated`);
- secondary: no suppressed cell may be recoverable from the published figures. A line with exactly
  one suppressed cell gets a second one (the smallest non-zero reported cell, else its zero cells,
  else its total), and a suppressed total with every cell reported gets one suppressed cell. Then the
  table is checked exactly (`custos.privacy.recovery`): a suppressed cell that the lines' sums still
  determine, over all lines together, gets one more cell of its lines suppressed. Both steps repeat
  until nothing changes, so a cell suppressed for a row also protects its column (`protect_table`).
  A known figure is never chosen to hide another: it cannot be taken back;
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
from custos.privacy.recovery import Equation, build_system, determined

SECONDARY_REASON = "secondary suppression: hides another suppressed cell of the same table"
# How many of a determined cell's neighbours the repair tries before it takes the smallest anyway.
_REPAIR_TRIES = 8


def small_cell_reason(min_count: int) -> str:
    return f"fewer than {min_count} rows"


def dominance_reason(n: int, k: float) -> str:
    return f"dominance: the {n} largest contributions give more than {k:g}% of the sum"


def extremes_reason(min_rows: int) -> str:
    return f"min, max and quantiles need a group of at least {min_rows} rows"


@dataclass(eq=False)
class Cell:
    """One count. `count` is None when it is not known (a site suppressed it). `known`: a figure the
    reader may know from elsewhere, which suppression cannot hide unless it is small."""

    count: int | None
    suppressed: bool = False
    reason: str | None = None
    known: bool = False

    @property
    def reported(self) -> int | None:
        """The count as it may be reported: None once suppressed."""
        return None if self.suppressed else self.count

    @property
    def hideable(self) -> bool:
        """Reported, and not a figure the reader knows anyway: secondary suppression may take it."""
        return not self.suppressed and not self.known

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


def _known_total(cells: Sequence[Cell]) -> Cell:
    counts = [c.count for c in cells]
    total = None if any(n is None for n in counts) else sum(n or 0 for n in counts)
    return Cell(total, known=True)


def _protect(cells: Sequence[Cell], total: Cell) -> bool:
    """The line rule: a line with one suppressed cell, or a suppressed total and none, gets another."""
    hidden = sum(1 for c in cells if c.suppressed)
    exposed = (hidden == 0 and total.suppressed) or (hidden == 1 and not total.suppressed)
    if not exposed:
        return False
    choices = [c for c in cells if c.hideable]
    nonzero = sorted((c for c in choices if c.count), key=lambda c: c.count or 0)
    if nonzero:
        nonzero[0].suppress(SECONDARY_REASON)
        return True
    if choices:
        for cell in choices:
            cell.suppress(SECONDARY_REASON)
        return True
    if total.hideable:
        total.suppress(SECONDARY_REASON)
        return True
    return False


def protect_line(line: Line) -> bool:
    """Secondary suppression for one line alone. Returns True when it suppressed something."""
    return _protect(line.cells, line.total if line.total is not None else Cell(None, known=True))


def _by_size(cells: Iterable[Cell], skip: Iterable[Cell] = ()) -> list[Cell]:
    """Hideable cells not in `skip`, non-zero ones first, smallest first."""
    skipped = {id(c) for c in skip}
    unique = {id(c): c for c in cells if c.hideable and id(c) not in skipped}
    return sorted(unique.values(), key=lambda c: (not c.count, c.count or 0))


@dataclass(frozen=True)
class _Sum:
    """A line with its total made explicit (a known one when the line has none)."""

    cells: Sequence[Cell]
    total: Cell

    @property
    def members(self) -> list[Cell]:
        return [*self.cells, self.total]


def _frees(sums: Sequence[_Sum], lines: Iterable[int], target: Cell, candidate: Cell) -> bool:
    """Whether suppressing `candidate` leaves `target` undetermined by `lines`."""
    candidate.suppressed = True
    try:
        system = build_system([Equation(sums[i].cells, sums[i].total) for i in sorted(set(lines))])
        index = next(i for i, u in enumerate(system.unknowns) if u is target)
        return index not in determined(system)
    finally:
        candidate.suppressed = False


def _repair(sums: Sequence[_Sum]) -> bool:
    """One more suppressed cell for each group of linked lines in which the published figures still
    determine a suppressed cell. Returns True when it suppressed something."""
    system = build_system([Equation(s.cells, s.total) for s in sums])
    found = determined(system)
    if not found:
        return False
    lines_of: dict[int, list[int]] = {}
    by_id: dict[int, Cell] = {}
    for number, line in enumerate(sums):
        for cell in line.members:
            lines_of.setdefault(id(cell), []).append(number)
            by_id[id(cell)] = cell
    component_of = {u: k for k, comp in enumerate(system.components) for u in comp.unknowns}
    repaired: set[int] = set()
    changed = False
    for u in found:
        if component_of[u] in repaired:
            continue
        repaired.add(component_of[u])
        component = system.components[component_of[u]]
        target = by_id[id(system.unknowns[u])]
        near = _by_size(c for line in system.lines_of(u) for c in sums[line].members)
        further = _by_size((c for line in component.lines for c in sums[line].members), skip=near)
        candidates = near + further
        if not candidates:
            continue
        choice = next(
            (
                c
                for c in candidates[:_REPAIR_TRIES]
                if _frees(sums, [*component.lines, *lines_of[id(c)]], target, c)
            ),
            candidates[0],
        )
        choice.suppress(SECONDARY_REASON)
        changed = True
    return changed


def _sums(table: Table) -> list[_Sum]:
    return [
        _Sum(line.cells, line.total if line.total is not None else _known_total(line.cells))
        for line in table.lines
    ]


def protect_table(table: Table, min_count: int) -> None:
    """Primary then secondary suppression over every line, until no rule fires: afterwards no
    suppressed cell is determined by the lines' sums (unless known figures alone determine it)."""
    sums = _sums(table)
    cells = {id(c): c for line in sums for c in line.members}
    suppress_small(cells.values(), min_count)
    # Each pass that changes anything suppresses at least one more cell, so this ends.
    for _ in range(len(cells) + 1):
        changed = False
        for line in sums:
            changed = _protect(line.cells, line.total) or changed
        if not changed:
            changed = _repair(sums)
        if not changed:
            return


def recoverable(table: Table, min_count: int) -> list[Cell]:
    """The suppressed cells of a table that its lines' sums determine (a total left out counts as
    known unless it is small): after `protect_table`, none but those known figures alone determine."""
    sums = _sums(table)
    suppress_small(
        [line.total for line, given in zip(sums, table.lines, strict=True) if given.total is None], min_count
    )
    system = build_system([Equation(s.cells, s.total) for s in sums])
    ours = {id(c) for c in table.cells()}
    by_id = {id(c): c for line in sums for c in line.members}
    return [by_id[id(system.unknowns[u])] for u in determined(system) if id(system.unknowns[u]) in ours]


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
