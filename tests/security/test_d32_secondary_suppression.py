"""Threat D32 (docs/threats.md): a cell of 7 or fewer is flagged, a suppressed cell cannot be
recovered from the totals published beside it, and totals are recomputed after rounding.

Recovery is checked independently of the library's own check: a suppressed cell is safe when another
assignment of the suppressed cells agrees with everything published and gives it a different value.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from custos.privacy import (
    DisclosureRules,
    Line,
    SdcTable,
    grid_lines,
    grid_table,
    protect_counts,
    recoverable_cells,
)

OPENSAFELY = DisclosureRules(min_count=8, rounding="midpoint6", dominance=None)


K = TypeVar("K", bound=Hashable)


def another_value_fits(truth: Mapping[Any, int], table: SdcTable[K], lines: Sequence[Line], key: K) -> bool:
    unknown = table.suppressed()
    index: dict[Hashable, int] = {k: i for i, k in enumerate(unknown)}
    rows, rhs = [], []
    for line in lines:
        row, constant = np.zeros(len(unknown)), 0.0
        for k, sign in [*((p, 1.0) for p in line.parts), (line.total, -1.0)]:
            if k in index:
                row[index[k]] += sign
            else:
                constant -= sign * truth[k]
        rows.append(row)
        rhs.append(constant)
    pin = np.zeros(len(unknown))
    pin[index[key]] = 1.0
    a, b = np.array([*rows, pin]), np.array([*rhs, truth[key] + 1.0])
    solution, *_ = np.linalg.lstsq(a, b, rcond=None)
    return bool(np.allclose(a @ solution, b, atol=1e-6))


def test_d32_cells_of_seven_or_fewer_are_flagged_without_their_value() -> None:
    table = protect_counts({"a": 7, "b": 1, "c": 8, "d": 0, "e": 40}, [], OPENSAFELY)

    assert table.values == {"a": None, "b": None, "c": 9, "d": 0, "e": 39}
    assert table.reasons == {"a": "fewer than 8 rows", "b": "fewer than 8 rows"}


def test_d32_a_suppressed_cell_is_not_recoverable_from_the_margins() -> None:
    # Admissions by ward (rows) and month (columns) with row, column and grand totals published.
    matrix = [[41, 5, 37, 52], [33, 48, 29, 3], [60, 44, 51, 38], [27, 35, 2, 46]]
    truth = grid_table(matrix)
    lines = grid_lines(4, 4)

    table = protect_counts(truth, lines, DisclosureRules(min_count=8))

    assert {(0, 1), (1, 3), (3, 2)} <= set(table.suppressed())
    assert recoverable_cells(table, lines) == []
    for key in table.suppressed():
        assert another_value_fits(truth, table, lines, key), key
    for i in range(4):  # the attack: a row total less the published cells of its row
        row = [table.values[(i, j)] for j in range(4)]
        assert row.count(None) != 1 or table.values[(i, None)] is None


def test_d32_totals_are_recomputed_after_rounding() -> None:
    counts: dict[Hashable, int] = {"0-17": 5, "18-64": 212, "65+": 97, "all": 314}
    lines = [Line(("0-17", "18-64", "65+"), "all")]
    rules = DisclosureRules(min_count=8, rounding="nearest", round_to=5, totals_from_cells=True)

    table = protect_counts(counts, lines, rules)

    published = table.published()
    assert table.values["0-17"] is None
    assert published["all"] == sum(v for k, v in published.items() if k != "all")
    assert all(v % 5 == 0 for v in published.values())
