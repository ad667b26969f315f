"""Statistical disclosure control rules: each rule alone, then secondary suppression checked against an
independent oracle (an alternative solution of the published equations), then the rules together."""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pytest

from custos.core.errors import InvalidInput
from custos.privacy import (
    DisclosureRules,
    Line,
    SdcTable,
    apply_min_count,
    dominance,
    grid_lines,
    grid_table,
    is_dominated,
    midpoint6,
    protect_counts,
    recompute_totals,
    recoverable_cells,
    round_counts,
    round_to_nearest,
    secondary_suppress,
    secondary_suppress_1d,
    secondary_suppress_2d,
    suppress_small_group_extremes,
)
from custos.privacy.sdc import (
    GROUP_SUPPRESSED_REASON,
    SECONDARY_REASON,
    dominance_reason,
    extremes_reason,
    small_cell_reason,
)

K = TypeVar("K", bound=Hashable)


def alternative_exists(
    true_values: Mapping[Any, int], table: SdcTable[K], lines: Sequence[Line], key: K
) -> bool:
    """Independent of `recoverable_cells`: is there a real assignment of the suppressed cells that
    satisfies every line, agrees with every published value, and gives `key` another value?"""
    unknown = table.suppressed()
    index: dict[Hashable, int] = {k: i for i, k in enumerate(unknown)}
    rows, rhs = [], []
    for line in lines:
        row, constant = np.zeros(len(unknown)), 0.0
        for k, sign in [*((p, 1.0) for p in line.parts), (line.total, -1.0)]:
            if k in index:
                row[index[k]] += sign
            else:
                constant -= sign * true_values[k]
        rows.append(row)
        rhs.append(constant)
    pinned = np.zeros(len(unknown))
    pinned[index[key]] = 1.0
    rows.append(pinned)
    rhs.append(true_values[key] + 1.0)
    a, b = np.array(rows), np.array(rhs)
    solution, *_ = np.linalg.lstsq(a, b, rcond=None)
    return bool(np.allclose(a @ solution, b, atol=1e-6))


# --- primary rules -------------------------------------------------------------------------------------


def test_min_count_suppresses_one_to_min_count_minus_one_and_keeps_zero() -> None:
    table = apply_min_count({"a": 0, "b": 1, "c": 9, "d": 10, "e": 250}, 10)

    assert table.values == {"a": 0, "b": None, "c": None, "d": 10, "e": 250}
    assert table.reasons == {"b": "fewer than 10 rows", "c": "fewer than 10 rows"}
    assert table.suppressed() == ["b", "c"]
    assert table.published() == {"a": 0, "d": 10, "e": 250}


def test_min_count_refuses_a_threshold_below_one() -> None:
    with pytest.raises(InvalidInput, match="min_count must be at least 1"):
        apply_min_count({"a": 3}, 0)


def test_a_table_cannot_hide_a_value_without_a_reason() -> None:
    with pytest.raises(InvalidInput, match="suppressed"):
        SdcTable({"a": None})
    with pytest.raises(InvalidInput, match="no value"):
        apply_min_count({"a": None}, 10)  # type: ignore[dict-item]


def test_a_cell_keeps_the_first_reason_it_was_suppressed_for() -> None:
    table = apply_min_count({"a": 3, "b": 40}, 10).with_suppressed(["a", "b"], SECONDARY_REASON)

    assert table.reasons == {"a": "fewer than 10 rows", "b": SECONDARY_REASON}


def test_dominance_suppresses_a_sum_its_largest_contributors_make_up() -> None:
    table = dominance(
        {
            "one person": [5000.0],
            "two large": [4500.0, 4400.0, 300.0, 200.0, 100.0, 100.0],  # top 2 = 8900 of 9600 = 92.7 %
            "spread": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0],  # top 2 = 1300 of 2800 = 46 %
            "signed": [-900.0, 50.0, 20.0, 30.0],  # |top 2| = 950 of 1000 absolute = 95 %
        },
        n=2,
        k=85.0,
    )

    assert table.suppressed() == ["one person", "two large", "signed"]
    assert table.published() == {"spread": 2800.0}
    assert set(table.reasons.values()) == {dominance_reason(2, 85.0)}


def test_dominance_keeps_integer_sums_integers_and_checks_its_parameters() -> None:
    table = dominance({"a": np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])}, n=1, k=50.0)
    assert table.values == {"a": 55}
    assert isinstance(table.values["a"], int)
    with pytest.raises(InvalidInput, match="0 < k < 100"):
        dominance({"a": [1.0]}, n=2, k=100.0)


def test_is_dominated_on_precomputed_largest_contributions() -> None:
    assert is_dominated([86.0], 100.0, 85.0)
    assert not is_dominated([85.0], 100.0, 85.0)
    assert not is_dominated([0.0, 0.0], 0.0, 85.0)  # a sum of zeros reveals no one's share


def test_extremes_of_small_or_suppressed_groups_are_suppressed() -> None:
    table = suppress_small_group_extremes(
        counts={None: 120, "F": 61, "M": 12, "X": None},
        extremes={
            None: {"min": 18, "max": 90},
            "F": {"min": 19, "max": 88, "q0.5": 41.0},
            "M": {"min": 22, "max": 77},
            "X": {"min": 30, "max": 31},
        },
        min_rows=20,
    )

    assert table.published() == {(None, "min"): 18, (None, "max"): 90, ("F", "min"): 19, ("F", "max"): 88,
                                 ("F", "q0.5"): 41.0}  # fmt: skip
    assert table.reasons == {
        ("M", "min"): extremes_reason(20),
        ("M", "max"): extremes_reason(20),
        ("X", "min"): GROUP_SUPPRESSED_REASON,
        ("X", "max"): GROUP_SUPPRESSED_REASON,
    }


def test_extremes_need_each_group_count() -> None:
    with pytest.raises(InvalidInput, match="no row count"):
        suppress_small_group_extremes({}, {"F": {"min": 1}}, 10)


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
    with pytest.raises(InvalidInput, match=r"cell 'b'"):
        round_counts({"a": 3, "b": 2.5}, "nearest", 5)


def test_round_counts_rounds_published_cells_and_leaves_suppressed_ones() -> None:
    table = apply_min_count({"a": 3, "b": 23, "c": 118, "d": 0}, 8)

    assert round_counts(table, "nearest", 5).values == {"a": None, "b": 25, "c": 120, "d": 0}
    assert round_counts(table, "midpoint6").values == {"a": None, "b": 21, "c": 117, "d": 0}
    assert round_counts(table, "none") is table
    assert round_counts(table, "midpoint6").reasons == {"a": "fewer than 8 rows"}


def test_totals_from_rounded_cells_reproduce_opensafelys_worked_example() -> None:
    # docs.opensafely.org/releasing-files, "Rounding counts": redact <= 7, round to 5, totals are the
    # sum of the rounded counts. Heart disease by age band, then the population by age band.
    lines = [Line(("21-30", "31-40", "41-50", "51+"), "total")]
    heart = {"21-30": 3, "31-40": 8, "41-50": 16, "51+": 23, "total": 50}
    population = {"21-30": 18, "31-40": 23, "41-50": 31, "51+": 44, "total": 116}

    heart_out = recompute_totals(round_counts(apply_min_count(heart, 8), "nearest", 5), lines)
    population_out = recompute_totals(round_counts(apply_min_count(population, 8), "nearest", 5), lines)

    assert heart_out.values == {"21-30": None, "31-40": 10, "41-50": 15, "51+": 25, "total": 50}
    assert population_out.values == {"21-30": 20, "31-40": 25, "41-50": 30, "51+": 45, "total": 120}


# --- secondary suppression -----------------------------------------------------------------------------


def test_one_suppressed_cell_with_a_known_total_takes_the_smallest_non_zero_cell_with_it() -> None:
    primary = apply_min_count({"a": 4, "b": 0, "c": 50, "d": 20}, 10)
    assert recoverable_cells(primary, [Line(("a", "b", "c", "d"))]) == ["a"]

    table = secondary_suppress_1d(primary)

    assert table.suppressed() == ["a", "d"]
    assert table.reasons["d"] == SECONDARY_REASON
    assert recoverable_cells(table, [Line(("a", "b", "c", "d"))]) == []


def test_a_total_in_the_table_is_suppressed_only_when_no_cell_can_be() -> None:
    groups = secondary_suppress_1d(apply_min_count({None: 73, "F": 3, "M": 70}, 10), total=None)
    alone = secondary_suppress_1d(apply_min_count({None: 4, "F": 4}, 10), total=None)

    assert groups.suppressed() == ["F", "M"]
    assert alone.suppressed() == [None, "F"]


def test_two_suppressed_cells_need_no_more() -> None:
    table = secondary_suppress_1d(apply_min_count({"a": 4, "b": 6, "c": 50}, 10))
    assert table.suppressed() == ["a", "b"]


def test_a_cell_equal_to_a_known_total_cannot_be_hidden_and_is_reported_recoverable() -> None:
    table = secondary_suppress(apply_min_count({"a": 4, "b": 40}, 10), [Line(("a",))])

    assert table.suppressed() == ["a"]  # suppressing b would hide nothing: a equals the known total
    assert recoverable_cells(table, [Line(("a",))]) == ["a"]


MATRIX = [
    [3, 25, 40, 12],
    [30, 12, 50, 33],
    [22, 35, 4, 18],
]


def test_naive_primary_suppression_of_a_2d_table_is_recoverable_from_its_margins() -> None:
    truth = grid_table(MATRIX)
    primary = apply_min_count(truth, 10)
    lines = grid_lines(3, 4)

    assert primary.suppressed() == [(0, 0), (2, 2)]
    assert recoverable_cells(primary, lines) == [(0, 0), (2, 2)]
    # (0, 0) = row total - the rest of its row: the attack the secondary rule must stop
    assert truth[(0, None)] - sum(truth[(0, j)] for j in (1, 2, 3)) == 3
    for key in primary.suppressed():
        assert not alternative_exists(truth, primary, lines, key)


def test_secondary_suppression_of_a_2d_table_leaves_nothing_recoverable() -> None:
    truth = grid_table(MATRIX)
    lines = grid_lines(3, 4)

    table = secondary_suppress_2d(apply_min_count(truth, 10))

    assert recoverable_cells(table, lines) == []
    assert {(0, 0), (2, 2)} <= set(table.suppressed())
    for key in table.suppressed():
        assert alternative_exists(truth, table, lines, key)
    assert all(truth[k] == v for k, v in table.published().items())
    assert table.values[(None, None)] == truth[(None, None)]  # the margins survive: cells protect cells


@pytest.mark.parametrize("seed", range(25))
def test_secondary_suppression_of_random_tables_leaves_nothing_recoverable(seed: int) -> None:
    rng = random.Random(seed)
    rows, cols = rng.randint(1, 5), rng.randint(1, 5)
    matrix = [[rng.choice([0, 1, 2, 5, 8, 9, 11, 15, 30, 60]) for _ in range(cols)] for _ in range(rows)]
    truth = grid_table(matrix)
    lines = grid_lines(rows, cols)

    table = secondary_suppress_2d(apply_min_count(truth, 10))

    assert recoverable_cells(table, lines) == []
    primary = set(apply_min_count(truth, 10).suppressed())
    assert primary <= set(table.suppressed())
    for key in table.suppressed():
        assert alternative_exists(truth, table, lines, key)


def test_margins_absent_from_a_2d_table_are_known_totals() -> None:
    # A histogram of groups x bins whose row totals (group counts) are published elsewhere: keep the
    # cells and the column totals only; the row totals and the grand total are known to the reader.
    truth = grid_table([[4, 30, 26], [25, 33, 40]])
    cells = {k: v for k, v in truth.items() if (k[0] is not None and k[1] is not None) or k[0] is None}
    cells.pop((None, None))

    table = secondary_suppress_2d(apply_min_count(cells, 10))

    lines = grid_lines(2, 3)
    assert recoverable_cells(table, lines) == []
    assert (0, None) not in table.values
    for key in table.suppressed():
        assert alternative_exists(truth, table, lines, key)


def test_reasons_name_the_rule_and_never_a_value() -> None:
    truth = grid_table([[3, 47, 52], [61, 7, 58], [44, 39, 26]])
    table = secondary_suppress_2d(apply_min_count(truth, 10))

    assert table.suppressed()
    for key in table.suppressed():
        reason = table.reasons[key]
        assert reason in {small_cell_reason(10), SECONDARY_REASON}
        assert str(truth[key]) not in reason
    for note in table.notes():
        assert not any(str(truth[k]) in note for k in table.suppressed())


# --- all count rules together --------------------------------------------------------------------------


def test_protect_counts_applies_min_count_secondary_rounding_and_totals() -> None:
    rules = DisclosureRules(min_count=8, rounding="nearest", round_to=5, totals_from_cells=True)
    counts = {"21-30": 3, "31-40": 8, "41-50": 16, "51+": 23, "total": 50}
    lines = [Line(("21-30", "31-40", "41-50", "51+"), "total")]

    table = protect_counts(counts, lines, rules)

    assert table.values == {"21-30": None, "31-40": None, "41-50": 15, "51+": 25, "total": 40}
    assert table.reasons == {"21-30": "fewer than 8 rows", "31-40": SECONDARY_REASON}


def test_protect_counts_with_default_rules_only_suppresses() -> None:
    table = protect_counts({"a": 12, "b": 9, "c": 31}, [Line(("a", "b", "c"))], DisclosureRules())

    assert table.values == {"a": None, "b": None, "c": 31}
