"""The disclosure-control engine (`custos.privacy.sdc`): each rule alone, then secondary suppression,
checked by its own invariant (no line left with exactly one suppressed cell) and against an
independent oracle (another solution of the published equations), then rounding."""

from __future__ import annotations

import random

import numpy as np
import pytest

from custos.core.errors import InvalidInput
from custos.privacy import (
    Cell,
    DisclosureRules,
    Line,
    Table,
    is_dominated,
    midpoint6,
    protect_line,
    protect_table,
    round_count,
    round_to_nearest,
    suppress_small,
)
from custos.privacy.sdc import SECONDARY_REASON, dominance_reason, recoverable, small_cell_reason


def another_value_fits(lines: list[Line], target: Cell, min_count: int = 10) -> bool:
    """Independent of the engine: is there a real assignment of the suppressed cells that satisfies
    every line, agrees with every published value, and gives `target` another value? A line without
    a total cell adds up to a total the reader knows, unless it is small (a small figure is
    suppressed wherever it is published)."""
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
    pinned = np.zeros(len(unknown))
    pinned[index[id(target)]] = 1.0
    a, b = np.array([*rows, pinned]), np.array([*rhs, (target.count or 0) + 1.0])
    solution, *_ = np.linalg.lstsq(a, b, rcond=None)
    return bool(np.allclose(a @ solution, b, atol=1e-6))


def grid(matrix: list[list[int]]) -> tuple[list[list[Cell]], list[Cell], list[Cell], Cell, list[Line]]:
    """A 2-D table of counts with its margins: cells, row totals, column totals and the grand total,
    each row adding up to its total, each column to its, and the margins to the grand total."""
    cells = [[Cell(v) for v in row] for row in matrix]
    row_totals = [Cell(sum(row)) for row in matrix]
    col_totals = [Cell(sum(row[j] for row in matrix)) for j in range(len(matrix[0]))]
    grand = Cell(sum(map(sum, matrix)))
    lines = [Line(row, total=t) for row, t in zip(cells, row_totals, strict=True)]
    lines += [Line([row[j] for row in cells], total=t) for j, t in enumerate(col_totals)]
    lines += [Line(row_totals, total=grand), Line(col_totals, total=grand)]
    return cells, row_totals, col_totals, grand, lines


def suppressed(lines: list[Line]) -> list[Cell]:
    found = {id(c): c for line in lines for c in [*line.cells, *([line.total] if line.total else [])]}
    return [c for c in found.values() if c.suppressed]


# --- primary rules -------------------------------------------------------------------------------------


def test_primary_suppression_hides_counts_strictly_between_zero_and_min_count() -> None:
    cells = [Cell(0), Cell(1), Cell(9), Cell(10), Cell(11)]
    suppress_small(cells, 10)
    assert [c.suppressed for c in cells] == [False, True, True, False, False]
    assert cells[1].reason == "fewer than 10 rows"
    assert [c.reported for c in cells] == [0, None, None, 10, 11]


def test_a_cell_keeps_the_first_reason_it_was_suppressed_for() -> None:
    small, large = Cell(3), Cell(40)
    suppress_small([small, large], 10)
    small.suppress(SECONDARY_REASON)
    large.suppress(SECONDARY_REASON)

    assert (small.reason, large.reason) == ("fewer than 10 rows", SECONDARY_REASON)


def test_is_dominated_on_precomputed_largest_contributions() -> None:
    assert is_dominated([86.0], 100.0, 85.0)
    assert not is_dominated([85.0], 100.0, 85.0)
    assert not is_dominated([0.0, 0.0], 0.0, 85.0)  # a sum of zeros reveals no one's share


def test_dominance_flags_a_sum_its_largest_contributors_make_up() -> None:
    cells = {
        "one person": [5000.0],
        "two large": [4500.0, 4400.0, 300.0, 200.0, 100.0, 100.0],  # top 2 = 8900 of 9600 = 92.7 %
        "spread": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0],  # top 2 = 1300 of 2800 = 46 %
        "signed": [-900.0, 50.0, 20.0, 30.0],  # |top 2| = 950 of 1000 absolute = 95 %
    }
    flagged = [
        key
        for key, parts in cells.items()
        if is_dominated(sorted(abs(p) for p in parts)[-2:], sum(abs(p) for p in parts), 85.0)
    ]

    assert flagged == ["one person", "two large", "signed"]
    assert dominance_reason(2, 85.0) == "dominance: the 2 largest contributions give more than 85% of the sum"


# --- secondary suppression -----------------------------------------------------------------------------


def test_a_lone_suppressed_cell_takes_the_smallest_nonzero_reported_cell_with_it() -> None:
    cells = [Cell(5, True, "fewer than 10 rows"), Cell(0), Cell(40), Cell(12), Cell(90)]
    assert protect_line(Line(cells, total=Cell(147)))
    assert [c.suppressed for c in cells] == [True, False, False, True, False]
    assert cells[3].reason == SECONDARY_REASON
    assert not protect_line(Line(cells, total=Cell(147)))


def test_one_suppressed_cell_with_a_known_total_takes_the_smallest_non_zero_cell_with_it() -> None:
    a, b, c, d = Cell(4), Cell(0), Cell(50), Cell(20)
    lines = [Line([a, b, c, d])]

    protect_table(Table(lines), 10)

    assert [x.suppressed for x in (a, b, c, d)] == [True, False, False, True]
    assert d.reason == SECONDARY_REASON
    assert all(another_value_fits(lines, x) for x in (a, d))


def test_when_only_zero_cells_remain_they_are_suppressed_and_then_the_total() -> None:
    cells = [Cell(5, True, "small"), Cell(0), Cell(0)]
    assert protect_line(Line(cells))
    assert all(c.suppressed for c in cells)

    total = Cell(5)
    assert protect_line(Line([Cell(5, True, "small")], total=total))
    assert total.suppressed


def test_a_total_in_the_table_is_suppressed_only_when_no_cell_can_be() -> None:
    overall, women, men = Cell(73), Cell(3), Cell(70)
    protect_table(Table([Line([women, men], total=overall)]), 10)
    assert [x.suppressed for x in (overall, women, men)] == [False, True, True]

    overall, women = Cell(4), Cell(4)
    protect_table(Table([Line([women], total=overall)]), 10)
    assert overall.suppressed and women.suppressed


def test_a_suppressed_total_with_every_cell_reported_hides_one_cell() -> None:
    cells = [Cell(30), Cell(20)]
    assert protect_line(Line(cells, total=Cell(None, True, "upstream")))
    assert [c.suppressed for c in cells] == [False, True]


def test_two_suppressed_cells_need_nothing_more() -> None:
    cells = [Cell(3, True, "small"), Cell(4, True, "small"), Cell(50)]
    assert not protect_line(Line(cells, total=Cell(57)))
    assert not cells[2].suppressed


def test_a_cell_equal_to_a_small_known_total_is_safe_since_the_total_is_not_known() -> None:
    alone, other = Cell(4), Cell(40)
    lines = [Line([alone]), Line([other])]  # `alone` adds up to a total known from elsewhere

    protect_table(Table(lines), 10)

    # That total is 4 too, suppressed wherever it is published: suppressing another cell hides nothing.
    assert alone.suppressed and not other.suppressed
    assert another_value_fits(lines, alone)
    assert recoverable(Table(lines), 10) == []


def test_a_known_figure_is_never_chosen_to_hide_another() -> None:
    small, large, count = Cell(4), Cell(40), Cell(44, known=True)
    lines = [Line([small, large], total=count)]

    protect_table(Table(lines), 10)

    assert small.suppressed and large.suppressed and not count.suppressed


def test_two_suppressed_cells_per_line_can_still_leave_one_determined() -> None:
    # Two closed rings of suppressed cells (rows 0-1 x columns 0-1, rows 2-3 x columns 2-3) joined by
    # cell (1, 2): every line holds two suppressed cells or none, so the line rule is content, but the
    # joining cell is on no ring and the margins give it away.
    matrix = [[30, 40, 50, 60], [35, 45, 55, 65], [20, 25, 30, 35], [22, 27, 33, 38]]
    cells, _, _, _, lines = grid(matrix)
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (1, 2)]:
        cells[i][j].suppress("upstream")
    assert recoverable(Table(lines), 10) == [cells[1][2]]
    assert not another_value_fits(lines, cells[1][2])

    protect_table(Table(lines), 10)

    assert recoverable(Table(lines), 10) == []
    for cell in suppressed(lines):
        assert another_value_fits(lines, cell)


def test_default_rules_suppress_a_small_cell_and_the_smallest_other() -> None:
    a, b, c = Cell(12), Cell(9), Cell(31)
    protect_table(Table([Line([a, b, c])]), DisclosureRules().min_count)
    assert [x.reported for x in (a, b, c)] == [None, None, 31]


def test_secondary_suppression_propagates_across_rows_and_columns() -> None:
    # rows: all rows, group a, group b; columns: three bins. Only a's first bin is small.
    overall = [Cell(30), Cell(60), Cell(90)]
    group_a = [Cell(3), Cell(30), Cell(40)]
    group_b = [Cell(27), Cell(30), Cell(50)]
    lines = [Line(overall), Line(group_a), Line(group_b)]
    lines += [Line([group_a[b], group_b[b]], total=overall[b]) for b in range(3)]
    protect_table(Table(lines), min_count=10)
    hidden = [[c.suppressed for c in row] for row in (overall, group_a, group_b)]
    for line in lines:
        in_line = sum(c.suppressed for c in line.cells)
        total_hidden = line.total is not None and line.total.suppressed
        assert in_line != 1 or total_hidden, hidden
    assert group_a[0].suppressed and group_b[0].suppressed


@pytest.mark.parametrize("seed", range(20))
def test_no_line_is_left_with_exactly_one_suppressed_cell(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = [[Cell(int(v)) for v in rng.integers(0, 25, 6)] for _ in range(int(rng.integers(1, 5)))]
    overall = [Cell(sum(row[b].count or 0 for row in groups)) for b in range(6)]
    lines = [Line(row) for row in [overall, *groups]]
    lines += [Line([row[b] for row in groups], total=overall[b]) for b in range(6)]
    protect_table(Table(lines), min_count=10)
    for line in lines:
        in_line = sum(c.suppressed for c in line.cells)
        if line.total is not None and line.total.suppressed:
            assert in_line >= 1 or all(c.count == 0 for c in line.cells)
        else:
            assert in_line != 1


MATRIX = [
    [3, 25, 40, 12],
    [30, 12, 50, 33],
    [22, 35, 4, 18],
]


def test_naive_primary_suppression_of_a_2d_table_is_recoverable_from_its_margins() -> None:
    cells, row_totals, _, _, lines = grid(MATRIX)
    suppress_small([c for row in cells for c in row], 10)

    assert suppressed(lines) == [cells[0][0], cells[2][2]]
    # (0, 0) = row total - the rest of its row: the attack the secondary rule must stop
    assert (row_totals[0].count or 0) - sum(c.count or 0 for c in cells[0][1:]) == 3
    for cell in suppressed(lines):
        assert not another_value_fits(lines, cell)


def test_secondary_suppression_of_a_2d_table_leaves_nothing_recoverable() -> None:
    cells, _, _, grand, lines = grid(MATRIX)

    protect_table(Table(lines), 10)

    assert {cells[0][0], cells[2][2]} <= set(suppressed(lines))
    for cell in suppressed(lines):
        assert another_value_fits(lines, cell)
    assert grand.reported == sum(map(sum, MATRIX))  # the margins survive: cells protect cells


@pytest.mark.parametrize("seed", range(25))
def test_secondary_suppression_of_random_tables_leaves_nothing_recoverable(seed: int) -> None:
    rng = random.Random(seed)
    rows, cols = rng.randint(1, 5), rng.randint(1, 5)
    matrix = [[rng.choice([0, 1, 2, 5, 8, 9, 11, 15, 30, 60]) for _ in range(cols)] for _ in range(rows)]
    cells, _, _, _, lines = grid(matrix)

    protect_table(Table(lines), 10)

    small = [c for row in cells for c in row if c.count is not None and 0 < c.count < 10]
    assert all(c.suppressed for c in small)
    for cell in suppressed(lines):
        assert another_value_fits(lines, cell)


def test_margins_absent_from_a_2d_table_are_known_totals() -> None:
    # A histogram of groups x bins whose row totals (group counts) are published elsewhere: each group
    # row adds up to a known total, each bin over the groups to the all-rows bin.
    groups = [[Cell(4), Cell(30), Cell(26)], [Cell(25), Cell(33), Cell(40)]]
    overall = [Cell(sum(row[b].count or 0 for row in groups)) for b in range(3)]
    lines = [Line(row) for row in groups]
    lines += [Line([row[b] for row in groups], total=overall[b]) for b in range(3)]

    protect_table(Table(lines), 10)

    assert groups[0][0].suppressed
    for cell in suppressed(lines):
        assert another_value_fits(lines, cell)


def test_reasons_name_the_rule_and_never_a_value() -> None:
    _, _, _, _, lines = grid([[3, 47, 52], [61, 7, 58], [44, 39, 26]])

    protect_table(Table(lines), 10)

    assert suppressed(lines)
    for cell in suppressed(lines):
        assert cell.reason in {small_cell_reason(10), SECONDARY_REASON}
        assert str(cell.count) not in (cell.reason or "")


# --- rounding ---------------------------------------------------------------------------------------


def test_round_to_nearest() -> None:
    assert [round_to_nearest(n, 5) for n in [0, 1, 2, 3, 7, 8, 12, 13, 118]] == [
        0,
        0,
        0,
        5,
        5,
        10,
        10,
        15,
        120,
    ]
    assert round_to_nearest(5, 10) == 10  # half-way rounds up
    assert round_to_nearest(14, 10) == 10
    with pytest.raises(InvalidInput, match="round_to must be at least 1"):
        round_to_nearest(3, 0)


def test_midpoint6_is_opensafelys_table() -> None:
    # docs.opensafely.org/releasing-files, "Midpoint 6 rounding": 0 -> 0, 1-6 -> 3, 7-12 -> 9, 13-18 -> 15
    expected = [0] + [3] * 6 + [9] * 6 + [15] * 6 + [21]
    assert [midpoint6(n) for n in range(20)] == expected


def test_midpoint6_stays_within_its_documented_interval() -> None:
    # "For non-zero rounded values of x, we know true values range between x-2 and x+3"
    for n in range(1, 1000):
        x = midpoint6(n)
        assert x % 6 == 3
        assert x - 2 <= n <= x + 3


def test_rounding_refuses_what_is_not_a_count() -> None:
    with pytest.raises(InvalidInput, match="integers >= 0"):
        midpoint6(-1)
    with pytest.raises(InvalidInput, match="integers >= 0"):
        round_count(2.5, DisclosureRules(rounding="nearest", round_to=5))  # type: ignore[arg-type]


def test_round_count_rounds_published_counts_and_leaves_suppressed_ones() -> None:
    nearest = DisclosureRules(rounding="nearest", round_to=5)
    midpoint = DisclosureRules(rounding="midpoint6")

    assert [round_count(n, nearest) for n in (None, 23, 118, 0)] == [None, 25, 120, 0]
    assert [round_count(n, midpoint) for n in (None, 23, 118, 0)] == [None, 21, 117, 0]
    assert [round_count(n, DisclosureRules()) for n in (None, 23, 118, 0)] == [None, 23, 118, 0]
