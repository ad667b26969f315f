"""The automatic check of tables that custom code and packages return (`custos.privacy.table_check`):
how columns are read, which cells are flagged or suppressed, and when a table is row-level."""

from __future__ import annotations

from typing import Any

import pytest

from custos.privacy.controls import DisclosureRules
from custos.privacy.table_check import (
    MAX_FLAGS,
    check_table,
    identifier_candidates,
    row_level_reason,
    value_class,
)

RULES = DisclosureRules(min_count=10)
COLUMNS = ["region", "n", "mean_bmi"]
ROWS: list[list[Any]] = [["north", 3, 31.2], ["south", 40, 27.0], ["east", 25, 26.5], ["west", 60, 25.1]]


def found(flags: Any) -> set[tuple[Any, ...]]:
    return {(f.row, f.column, f.rule, f.value_class, f.action) for f in flags}


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("n", [3, 40, None], "count"),
        ("n_patients", [3.0, 40.0], "count"),
        ("patients_count", [1, 2], "count"),
        ("mean_bmi", [31.2, 27.0], "magnitude"),
        ("age", [40, 41], "magnitude"),  # an integer whose name does not say count
        ("n", [-1, 3], "magnitude"),  # a count is never negative
        ("n", [1.5, 3], "magnitude"),
        ("region", ["north", "south"], "label"),
        ("flag", [True, False], "label"),
        ("n", [None, None], "label"),
        ("nothing", [], "label"),
    ],
)
def test_columns_are_read_as_counts_magnitudes_or_labels(name: str, values: list[Any], expected: str) -> None:
    assert value_class(name, values) == expected


def test_a_small_count_is_flagged_with_its_mean_and_the_cell_that_would_give_it_back() -> None:
    checked = check_table(COLUMNS, ROWS, RULES)
    assert checked.rows == ROWS  # flagged, not changed
    assert found(checked.flags) >= {
        (0, "n", "min_count", "count", "flagged"),
        (0, "mean_bmi", "min_count", "magnitude", "flagged"),
        (2, "n", "secondary", "count", "flagged"),  # the next smallest: total - others gives 3 back
        (2, "mean_bmi", "secondary", "magnitude", "flagged"),
        (None, "mean_bmi", "dominance", "magnitude", "unchecked"),
    }
    assert all(str(3) not in f.reason and "north" not in f.reason for f in checked.flags)


def test_enforce_suppresses_the_flagged_cells_and_rounds_the_counts() -> None:
    rules = DisclosureRules(min_count=10, rounding="nearest", round_to=5)
    checked = check_table(COLUMNS, ROWS, rules, "enforce")
    assert checked.rows == [
        ["north", None, None],
        ["south", 40, 27.0],
        ["east", None, None],
        ["west", 60, 25.1],
    ]
    assert found(checked.flags) >= {
        (0, "n", "min_count", "count", "suppressed"),
        (None, "n", "rounding", "count", "rounded"),
    }
    assert ROWS[0] == ["north", 3, 31.2]  # the input is left alone


def test_unrounded_counts_are_flagged_where_the_policy_rounds() -> None:
    rules = DisclosureRules(min_count=1, rounding="midpoint6", dominance=None)
    assert check_table(["g", "n"], [["a", 9], ["b", 15]], rules).flags == []  # already midpoints
    assert found(check_table(["g", "n"], [["a", 10], ["b", 16]], rules).flags) == {
        (None, "n", "rounding", "count", "flagged")
    }
    assert check_table(["g", "n"], [["a", 10], ["b", 16]], rules, "enforce").rows == [["a", 9], ["b", 15]]


def test_a_null_count_counts_as_suppressed_and_its_row_is_unchecked() -> None:
    checked = check_table(["g", "n", "mean"], [["a", None, 1.0], ["b", 40, 2.0], ["c", 50, 3.0]], RULES)
    assert found(checked.flags) >= {
        (0, "mean", "unchecked", "magnitude", "unchecked"),
        (1, "n", "secondary", "count", "flagged"),  # else the null's count is the total less 40 and 50
    }


def test_magnitudes_without_a_count_column_are_unchecked() -> None:
    checked = check_table(["term", "coef"], [["age", 0.2], ["bmi", -1.3]], RULES, "enforce")
    assert checked.rows == [["age", 0.2], ["bmi", -1.3]]
    assert found(checked.flags) == {(None, "coef", "unchecked", "magnitude", "unchecked")}


def test_several_count_columns_protect_each_row_too() -> None:
    columns = ["region", "n_f", "n_m"]
    rows: list[list[Any]] = [["north", 4, 30], ["south", 50, 45], ["east", 35, 20]]
    checked = check_table(columns, rows, DisclosureRules(min_count=10, dominance=None), "enforce")
    assert checked.rows[0] == ["north", None, None]  # row total known: the 30 would give the 4 back
    assert checked.rows[2][1] is None  # and the column's next smallest


def test_the_flags_are_bounded() -> None:
    rows: list[list[Any]] = [[f"g{i}", 1, 1.0] for i in range(MAX_FLAGS)]
    flags = check_table(COLUMNS, rows, RULES).flags
    assert len(flags) == MAX_FLAGS
    assert flags[-1].rule == "truncated" and flags[-1].reason.endswith("more flags are not listed")


def test_a_table_is_row_level_with_a_row_per_row_read_or_an_identifying_column() -> None:
    assert row_level_reason(40, 40, {}) == "it has 40 rows for a read of 40 rows: one row per row read"
    assert row_level_reason(20, 40, {}) is not None
    assert row_level_reason(19, 40, {}) is None
    assert row_level_reason(5, 0, {}) is None  # it read nothing
    reason = row_level_reason(5, 20_000, {"who": "patient_id"})
    assert reason == "column 'who' identifies rows: its values each single out one row of 'patient_id'"
    flagged = check_table(["who"], [["a-1"]], RULES, "allow_row_level", row_level=reason).flags
    assert found(flagged) == {(None, None, "row_level", "table", "flagged")}


def test_identifier_candidates_are_distinct_text_or_integers_with_no_null() -> None:
    columns = ["id", "num", "age", "bmi", "tag", "maybe"]
    rows = [["a", 1, 40, 1.5, True, "x"], ["b", 2, 40, 2.5, False, None]]
    assert identifier_candidates(columns, rows) == {"id": ["a", "b"], "num": [1, 2]}
    assert identifier_candidates(["id"], []) == {}
