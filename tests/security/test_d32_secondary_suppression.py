"""Threat D32 (docs/threats.md): a cell of 7 or fewer is flagged, and a suppressed cell cannot be
recovered from the totals published beside it. The rules are those of the engine every model's
disclosure control runs on (`custos.privacy.sdc`).

Recovery is checked independently of the engine: a suppressed cell is safe when another assignment
of the suppressed cells agrees with everything published and gives it a different value. A line
without a total adds up to a figure the reader knows from elsewhere, unless that figure is small
(then it is suppressed wherever it is published).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from custos.privacy import Cell, DisclosureRules, Line, Table, protect_table, round_count, suppress_small

OPENSAFELY = DisclosureRules(min_count=8, rounding="midpoint6", dominance=None)


def another_value_fits(lines: list[Line], target: Cell, min_count: int = 8) -> bool:
    cells = {id(c): c for line in lines for c in [*line.cells, *([line.total] if line.total else [])]}
    unknown = [c for c in cells.values() if c.suppressed]
    index = {id(c): i for i, c in enumerate(unknown)}
    rows, rhs = [], []
    for line in lines:
        row, constant = np.zeros(len(unknown)), 0.0
        parts = [(c, 1.0) for c in line.cells]
        if line.total is None:
            known = sum(c.count or 0 for c in line.cells)
            if 0 < known < min_count:
                continue
            constant += known
        else:
            parts.append((line.total, -1.0))
        for cell, sign in parts:
            if id(cell) in index:
                row[index[id(cell)]] += sign
            else:
                constant -= sign * (cell.count or 0)
        rows.append(row)
        rhs.append(constant)
    pin = np.zeros(len(unknown))
    pin[index[id(target)]] = 1.0
    a, b = np.array([*rows, pin]), np.array([*rhs, (target.count or 0) + 1.0])
    solution, *_ = np.linalg.lstsq(a, b, rcond=None)
    return bool(np.allclose(a @ solution, b, atol=1e-6))


def test_d32_cells_of_seven_or_fewer_are_flagged_without_their_value() -> None:
    cells = {name: Cell(count) for name, count in {"a": 7, "b": 1, "c": 8, "d": 0, "e": 40}.items()}

    suppress_small(cells.values(), OPENSAFELY.min_count)

    published = {name: round_count(cell.reported, OPENSAFELY) for name, cell in cells.items()}
    assert published == {"a": None, "b": None, "c": 9, "d": 0, "e": 39}
    assert {name: cell.reason for name, cell in cells.items() if cell.suppressed} == {
        "a": "fewer than 8 rows",
        "b": "fewer than 8 rows",
    }


def test_d32_a_suppressed_cell_is_not_recoverable_from_the_margins() -> None:
    # Admissions by ward (rows) and month (columns) with row, column and grand totals published.
    matrix = [[41, 5, 37, 52], [33, 48, 29, 3], [60, 44, 51, 38], [27, 35, 2, 46]]
    cells = [[Cell(v) for v in row] for row in matrix]
    row_totals = [Cell(sum(row)) for row in matrix]
    col_totals = [Cell(sum(row[j] for row in matrix)) for j in range(4)]
    grand = Cell(sum(map(sum, matrix)))
    lines = [Line(row, total=t) for row, t in zip(cells, row_totals, strict=True)]
    lines += [Line([row[j] for row in cells], total=t) for j, t in enumerate(col_totals)]
    lines += [Line(row_totals, total=grand), Line(col_totals, total=grand)]

    protect_table(Table(lines), DisclosureRules(min_count=8).min_count)

    assert cells[0][1].suppressed and cells[1][3].suppressed and cells[3][2].suppressed
    hidden = {id(c): c for line in lines for c in [*line.cells, line.total] if c is not None and c.suppressed}
    for cell in hidden.values():
        assert another_value_fits(lines, cell), cell
    for i in range(4):  # the attack: a row total less the published cells of its row
        row = [c.reported for c in cells[i]]
        assert row.count(None) != 1 or row_totals[i].reported is None


def histogram_shaped(rng: random.Random) -> tuple[list[Line], list[list[Cell]]]:
    """A stats histogram of 0-3 groups x 1-5 bins, each row ending with the values outside the edges;
    each bin adds up over the groups to the all-rows bin, and each row to the column's count in that
    cell: published beside it (a summary of the column in the same result) or known from elsewhere."""
    groups, bins = rng.randint(0, 3), rng.randint(1, 5)
    sizes = [0, 0, 1, 2, 3, 5, 8, 9, 11, 15, 30, 60]
    grouped = [[Cell(rng.choice(sizes)) for _ in range(bins + 1)] for _ in range(groups)]
    if grouped:
        overall = [Cell(sum(row[k].count or 0 for row in grouped)) for k in range(bins + 1)]
    else:
        overall = [Cell(rng.choice(sizes)) for _ in range(bins + 1)]
    rows = [overall, *grouped]
    lines: list[Line] = []
    if rng.random() < 0.5:
        counts = [Cell(sum(c.count or 0 for c in row)) for row in rows]
        lines.append(Line(counts[1:], total=counts[0]) if grouped else Line([counts[0]]))
        lines += [Line(row, total=count) for row, count in zip(rows, counts, strict=True)]
    else:
        lines += [Line(row) for row in rows]
    if grouped:
        lines += [Line([row[k] for row in grouped], total=overall[k]) for k in range(bins + 1)]
    return lines, rows


@pytest.mark.parametrize("seed", range(300))
def test_d32_no_cell_of_a_histogram_is_recoverable(seed: int) -> None:
    lines, rows = histogram_shaped(random.Random(seed))

    protect_table(Table(lines), OPENSAFELY.min_count)

    assert all(c.suppressed for row in rows for c in row if c.count is not None and 0 < c.count < 8)
    hidden = {id(c): c for line in lines for c in [*line.cells, line.total] if c is not None and c.suppressed}
    for cell in hidden.values():
        assert another_value_fits(lines, cell), (seed, cell)
