"""Threat D32 (docs/threats.md): a cell of 7 or fewer is flagged, and a suppressed cell cannot be
recovered from the totals published beside it. The rules are those of the engine every model's
disclosure control runs on (`custos.privacy.sdc`).

Recovery is checked independently of the engine: a suppressed cell is safe when another assignment
of the suppressed cells agrees with everything published and gives it a different value.
"""

from __future__ import annotations

import numpy as np

from custos.privacy import Cell, DisclosureRules, Line, Table, protect_table, round_count, suppress_small

OPENSAFELY = DisclosureRules(min_count=8, rounding="midpoint6", dominance=None)


def another_value_fits(lines: list[Line], target: Cell) -> bool:
    cells = {id(c): c for line in lines for c in [*line.cells, *([line.total] if line.total else [])]}
    unknown = [c for c in cells.values() if c.suppressed]
    index = {id(c): i for i, c in enumerate(unknown)}
    rows, rhs = [], []
    for line in lines:
        assert line.total is not None
        row, constant = np.zeros(len(unknown)), 0.0
        for cell, sign in [*((c, 1.0) for c in line.cells), (line.total, -1.0)]:
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
