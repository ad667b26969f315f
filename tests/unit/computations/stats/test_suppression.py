"""The generic small-cell rules: primary suppression below min_count and secondary suppression so no
suppressed cell is left alone in a line."""

from __future__ import annotations

import numpy as np
import pytest

from custos.computations.stats.suppression import (
    SECONDARY_REASON,
    Cell,
    Line,
    Table,
    protect_line,
    protect_table,
    suppress_small,
)


def test_primary_suppression_hides_counts_strictly_between_zero_and_min_count() -> None:
    cells = [Cell(0), Cell(1), Cell(9), Cell(10), Cell(11)]
    suppress_small(cells, 10)
    assert [c.suppressed for c in cells] == [False, True, True, False, False]
    assert cells[1].reason == "fewer than 10 rows"


def test_a_lone_suppressed_cell_takes_the_smallest_nonzero_reported_cell_with_it() -> None:
    cells = [Cell(5, True, "fewer than 10 rows"), Cell(0), Cell(40), Cell(12), Cell(90)]
    assert protect_line(Line(cells, total=Cell(147)))
    assert [c.suppressed for c in cells] == [True, False, False, True, False]
    assert cells[3].reason == SECONDARY_REASON
    assert not protect_line(Line(cells, total=Cell(147)))


def test_when_only_zero_cells_remain_they_are_suppressed_and_then_the_total() -> None:
    cells = [Cell(5, True, "small"), Cell(0), Cell(0)]
    assert protect_line(Line(cells))
    assert all(c.suppressed for c in cells)

    total = Cell(5)
    assert protect_line(Line([Cell(5, True, "small")], total=total))
    assert total.suppressed


def test_a_suppressed_total_with_every_cell_reported_hides_one_cell() -> None:
    cells = [Cell(30), Cell(20)]
    assert protect_line(Line(cells, total=Cell(None, True, "upstream")))
    assert [c.suppressed for c in cells] == [False, True]


def test_two_suppressed_cells_need_nothing_more() -> None:
    cells = [Cell(3, True, "small"), Cell(4, True, "small"), Cell(50)]
    assert not protect_line(Line(cells, total=Cell(57)))
    assert not cells[2].suppressed


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
