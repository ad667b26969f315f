"""Disclosure control of `stats`: at the gateway on one site's result, and at the orchestrator on
pooled cells; small cells lose their values and cannot be recovered from what is reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from custos.computations.stats.model import StatsModel
from custos.core.errors import InvalidInput

Runner = Callable[..., Any]
MODEL = StatsModel()
PARAMS = {
    "columns": ["age", "sex"],
    "statistics": ["count", "sum", "mean", "variance", "std", "min", "max"],
    "group_by": "sex",
}


def site_table(sizes: dict[str, int], seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    sex = [label for label, n in sizes.items() for _ in range(n)]
    return pa.table({"age": rng.integers(18, 90, len(sex)), "sex": sex})


def site_result(
    reader: Any, table: pa.Table, params: dict[str, Any], round_input: dict[str, Any] | None = None
) -> Any:
    return MODEL.compute_site(reader({"t": table}), "t", params, round_input or {"phase": "summary"})


def test_a_small_group_is_suppressed_at_the_site_without_any_of_its_values(arrow_reader: Any) -> None:
    table = site_table({"F": 5, "M": 50, "X": 30})
    raw = site_result(arrow_reader, table, PARAMS)
    filtered = MODEL.filter_site_result(PARAMS, raw, 10)

    cells = {c["group"]: c for c in filtered["summaries"][0]["cells"]}
    assert cells["F"] == {"group": "F", "suppressed": True, "reason": "fewer than 10 rows"}
    assert cells["X"]["suppressed"] is True
    assert "secondary" in cells["X"]["reason"]
    assert set(cells["X"]) == {"group", "suppressed", "reason"}
    assert cells["M"]["count"] == 50 and cells[None]["count"] == 85
    frequencies = {c["category"]: c for c in filtered["frequencies"][0]["cells"]}
    assert set(frequencies["F"]) == {"category", "suppressed", "reason"}
    assert frequencies["M"] == {"category": "M", "count": 50}


def test_the_suppressed_cell_cannot_be_recovered_by_subtracting_from_the_total(arrow_reader: Any) -> None:
    table = site_table({"F": 5, "M": 50, "X": 30}, seed=4)
    frame = table.to_pandas()
    true_f = frame[frame["sex"] == "F"]["age"]
    filtered = MODEL.filter_site_result(PARAMS, site_result(arrow_reader, table, PARAMS), 10)
    cells = filtered["summaries"][0]["cells"]
    total = next(c for c in cells if c["group"] is None)
    reported = [c for c in cells if c["group"] is not None and not c.get("suppressed")]

    recovered_count = total["count"] - sum(c["count"] for c in reported)
    recovered_sum = total["sum"] - sum(c["sum"] for c in reported)
    assert recovered_count != len(true_f)
    assert recovered_sum != int(true_f.sum())
    assert recovered_count == 35  # F and X together, not F


def test_a_small_histogram_bin_is_suppressed_with_another_bin_of_its_row(arrow_reader: Any) -> None:
    ages = [20] * 3 + [35] * 40 + [50] * 25 + [70] * 60
    table = pa.table({"age": ages})
    params = {"columns": ["age"], "histograms": [{"column": "age", "edges": [18, 30, 45, 60, 96]}]}
    filtered = MODEL.filter_site_result(params, site_result(arrow_reader, table, params), 10)
    cell = filtered["histograms"][0]["cells"][0]
    assert cell["counts"] == [None, 40, None, 60, 0]  # the last: values outside the edges
    assert cell["suppressed"] == [True, False, True, False, False]
    assert cell["reasons"][0] == "fewer than 10 rows"
    # the column's count (128) minus the reported bins leaves 28: two bins together
    assert filtered["summaries"][0]["cells"][0]["count"] - 40 - 60 == 28


def test_grouped_histogram_bins_are_protected_along_rows_and_along_bins(arrow_reader: Any) -> None:
    ages = [20] * 4 + [50] * 30 + [70] * 30 + [20] * 40 + [50] * 40 + [70] * 40
    sex = ["F"] * 64 + ["M"] * 120
    table = pa.table({"age": ages, "sex": sex})
    params = {
        "columns": ["age"],
        "group_by": "sex",
        "histograms": [{"column": "age", "edges": [18, 30, 60, 96]}],
    }
    filtered = MODEL.filter_site_result(params, site_result(arrow_reader, table, params), 10)
    rows = {c["group"]: c for c in filtered["histograms"][0]["cells"]}
    assert rows["F"]["suppressed"][0] is True
    # the all-rows bin is reported, so M's first bin may not be: 44 - 40 would give F's 4
    assert rows[None]["counts"][0] == 44
    assert rows["M"]["suppressed"][0] is True
    for row in rows.values():
        assert sum(row["suppressed"]) != 1


def test_the_filter_refuses_what_is_not_a_declared_aggregate(arrow_reader: Any) -> None:
    raw = site_result(arrow_reader, site_table({"F": 20}), PARAMS)
    raw["rows"] = [[1, 2, 3]]
    with pytest.raises(InvalidInput, match="rows"):
        MODEL.filter_site_result(PARAMS, raw, 10)


def test_pooled_cells_below_min_count_are_suppressed_with_their_quantiles_and_extremes(
    stats_runner: Runner,
) -> None:
    sites = {
        "site-a/t": site_table({"F": 40, "M": 30, "X": 4}, seed=1),
        "site-b/t": site_table({"F": 35, "M": 30, "X": 4}, seed=2),
    }
    params = {**PARAMS, "quantiles": [{"column": "age", "probs": [0.5]}]}
    run = stats_runner(params, sites, min_count=10, site_min_count=3)
    result = run.result
    summaries = {e["group"]: e for e in result["summaries"]}
    assert summaries["X"] == {
        "column": "age",
        "group": "X",
        "suppressed": True,
        "reason": "fewer than 10 rows",
    }
    assert summaries["M"]["suppressed"] is True  # secondary: the smallest reported group
    assert "min" in summaries["F"] and "min" not in summaries["M"]
    quantiles = {e["group"]: e for e in result["quantiles"]}
    assert quantiles["X"]["suppressed"] is True and "value" not in quantiles["X"]
    assert quantiles["F"]["value"] is not None
    assert any(note.startswith("summary of age, sex=X: fewer than 10 rows") for note in result["suppressed"])
    # no bisection was ever asked for a suppressed cell
    searched = {(s["column"], s["group"]) for ri in run.round_inputs[1:] for s in ri["searches"]}
    assert searched == {("age", None), ("age", "F")}


def test_a_cell_suppressed_at_one_site_is_suppressed_in_the_pool_naming_the_site(
    stats_runner: Runner,
) -> None:
    sites = {
        "site-a/t": site_table({"F": 40, "M": 30, "X": 30}, seed=1),
        "site-b/t": site_table({"F": 35, "M": 30, "X": 6}, seed=2),
    }
    result = stats_runner(PARAMS, sites, min_count=10).result
    summaries = {e["group"]: e for e in result["summaries"]}
    assert summaries["X"]["suppressed"] is True
    assert summaries["X"]["reason"] == "suppressed at site-b/t: fewer than 10 rows"
    assert "count" not in summaries["X"]


def test_a_site_refuses_bisection_counts_for_a_cell_it_suppresses(arrow_reader: Any) -> None:
    table = site_table({"F": 40, "M": 30, "X": 4}, seed=3)
    params = {**PARAMS, "quantiles": [{"column": "age", "probs": [0.5]}]}
    round_input = {
        "phase": "quantiles",
        "round": 1,
        "thresholds": 255,
        "searches": [
            {"id": 0, "column": "age", "group": "X", "lo": -(2**62), "hi": 2**62},
            {"id": 1, "column": "age", "group": "F", "lo": -(2**62), "hi": 2**62},
        ],
    }
    filtered = MODEL.filter_site_result(params, site_result(arrow_reader, table, params, round_input), 10)
    searches = {s["group"]: s for s in filtered["searches"]}
    assert searches["X"] == {
        "id": 0,
        "column": "age",
        "group": "X",
        "suppressed": True,
        "reason": "fewer than 10 rows",
    }
    assert len(searches["F"]["counts"]) == 255
    assert "count_tables" not in filtered


def test_a_site_answers_at_most_two_order_statistics_per_probability(arrow_reader: Any) -> None:
    table = site_table({"F": 40}, seed=3)
    params = {**PARAMS, "quantiles": [{"column": "age", "probs": [0.5]}]}
    many = [{"id": i, "column": "age", "group": None, "lo": -(2**62) + i, "hi": 2**62} for i in range(3)]
    round_input = {"phase": "quantiles", "round": 1, "thresholds": 255, "searches": many}
    raw = site_result(arrow_reader, table, params, round_input)
    with pytest.raises(InvalidInput, match="at most 2"):
        MODEL.filter_site_result(params, raw, 10)
