"""The pooled `stats` results equal pandas on the concatenated data: moments to 1e-9 relative,
counts, frequencies, histograms and quantiles exactly, grouped and filtered too."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

Runner = Callable[..., Any]
ALL_STATISTICS = ["count", "sum", "mean", "variance", "std", "min", "max"]
EDGES = [18, 30, 45, 60, 75, 96]
PROBS = [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.55, 0.75, 0.9, 0.99, 1.0]


def pooled(sites: dict[str, pa.Table]) -> pd.DataFrame:
    return pa.concat_tables(sites.values()).to_pandas()


def expected(series: pd.Series, statistic: str) -> Any:
    value = {
        "count": series.count,
        "sum": series.sum,
        "mean": series.mean,
        "variance": series.var,
        "std": series.std,
        "min": series.min,
        "max": series.max,
    }[statistic]()
    return None if isinstance(value, float) and math.isnan(value) else value


def cell_rows(frame: pd.DataFrame, group_by: str | None, group: str | None) -> pd.DataFrame:
    if group == "(missing)":  # the rows whose group is null
        return frame[frame[group_by].isna()]
    return frame if group is None else frame[frame[group_by] == group]


def outside(values: pd.Series, edges: list[float] | np.ndarray) -> int:
    present = values.dropna()
    return int(((present < edges[0]) | (present > edges[-1])).sum())


def assert_summaries_match(result: dict[str, Any], frame: pd.DataFrame, statistics: list[str]) -> int:
    checked = 0
    for entry in result["summaries"]:
        series = cell_rows(frame, result["group_by"], entry["group"])[entry["column"]]
        for statistic in statistics:
            want, got = expected(series, statistic), entry[statistic]
            if statistic in ("count", "min", "max") or want is None:
                assert got == want, (entry, statistic, want)
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=0), (entry, statistic, want)
            checked += 1
    return checked


def assert_quantiles_match(result: dict[str, Any], frame: pd.DataFrame) -> int:
    for entry in result["quantiles"]:
        series = cell_rows(frame, result["group_by"], entry["group"])[entry["column"]]
        want = series.quantile(entry["prob"])
        assert entry["value"] == (None if math.isnan(want) else want), (entry, want)
    return len(result["quantiles"])


def test_ungrouped_statistics_frequencies_histograms_and_quantiles_equal_pandas(
    stats_runner: Runner, make_cohort: Callable[..., dict[str, pa.Table]]
) -> None:
    sites = make_cohort(7)
    params = {
        "columns": ["age", "bmi", "score", "delta", "sex", "smoker"],
        "statistics": ALL_STATISTICS,
        "histograms": [{"column": "age", "edges": EDGES}, {"column": "bmi", "edges": [15, 20, 25, 30, 40]}],
        "quantiles": [{"column": "bmi", "probs": PROBS}, {"column": "delta", "probs": PROBS}],
    }
    run = stats_runner(params, sites)
    frame = pooled(sites)
    result = run.result

    assert assert_summaries_match(result, frame, ALL_STATISTICS) == 4 * len(ALL_STATISTICS)
    assert [e["group"] for e in result["summaries"]] == [None] * 4
    frequencies = {(e["column"], e["category"]): e["count"] for e in result["frequencies"]}
    assert frequencies == {
        **{("sex", k): v for k, v in frame["sex"].value_counts().items()},
        ("sex", "(missing)"): frame["sex"].isna().sum(),
        **{("smoker", "true" if k else "false"): v for k, v in frame["smoker"].value_counts().items()},
        ("smoker", "(missing)"): frame["smoker"].isna().sum(),
    }
    for hist in result["histograms"]:
        edges = np.asarray(hist["edges"])
        assert hist["counts"] == np.histogram(frame[hist["column"]].dropna(), bins=edges)[0].tolist()
        assert hist["suppressed"] == [False] * (len(edges) - 1)
        assert hist["outside"] == outside(frame[hist["column"]], edges)
    assert assert_quantiles_match(result, frame) == 2 * len(PROBS)
    assert result["suppressed"] == []
    assert 2 < result["rounds"] <= 12


def test_grouped_results_equal_pandas_per_group(
    stats_runner: Runner, make_cohort: Callable[..., dict[str, pa.Table]]
) -> None:
    sites = make_cohort(11)
    params = {
        "columns": ["age", "bmi", "sex"],
        "statistics": ALL_STATISTICS,
        "group_by": "sex",
        "histograms": [{"column": "age", "edges": EDGES}],
        "quantiles": [{"column": "bmi", "probs": PROBS}, {"column": "score", "probs": [0.2, 0.5, 0.8]}],
    }
    result = stats_runner(params, sites).result
    frame = pooled(sites)

    groups = (None, "F", "M", "X", "(missing)")  # "(missing)": rows whose sex is null
    assert [(e["column"], e["group"]) for e in result["summaries"]] == [
        (c, g) for c in ("age", "bmi") for g in groups
    ]
    assert assert_summaries_match(result, frame, ALL_STATISTICS) == 10 * len(ALL_STATISTICS)
    assert assert_quantiles_match(result, frame) == 5 * (len(PROBS) + 3)
    for hist in result["histograms"]:
        rows = cell_rows(frame, "sex", hist["group"])
        assert hist["counts"] == np.histogram(rows["age"].dropna(), bins=EDGES)[0].tolist()
        assert hist["outside"] == outside(rows["age"], EDGES)
    assert [h["group"] for h in result["histograms"]] == list(groups)
    assert result["suppressed"] == []


def test_filters_are_pushed_down_and_results_match_the_filtered_pandas_frame(
    stats_runner: Runner, make_cohort: Callable[..., dict[str, pa.Table]]
) -> None:
    sites = make_cohort(3)
    params = {
        "columns": ["bmi", "sex"],
        "statistics": ALL_STATISTICS,
        "group_by": "sex",
        "quantiles": [{"column": "bmi", "probs": [0.25, 0.5, 0.75]}],
        "histograms": [{"column": "bmi", "edges": [10, 20, 25, 30, 45]}],
        "filters": [
            {"column": "age", "op": ">=", "value": 40},
            {"column": "sex", "op": "in", "value": ["F", "M"]},
        ],
    }
    result = stats_runner(params, sites).result
    frame = pooled(sites)
    frame = frame[(frame["age"] >= 40) & frame["sex"].isin(["F", "M"])]

    assert [e["group"] for e in result["summaries"]] == [None, "F", "M"]
    assert assert_summaries_match(result, frame, ALL_STATISTICS) == 3 * len(ALL_STATISTICS)
    assert assert_quantiles_match(result, frame) == 9
    assert {e["category"]: e["count"] for e in result["frequencies"]} == frame["sex"].value_counts().to_dict()
    assert (
        result["histograms"][0]["counts"]
        == np.histogram(frame["bmi"].dropna(), bins=[10, 20, 25, 30, 45])[0].tolist()
    )


def test_a_site_left_with_no_rows_by_the_filter_still_pools_exactly(
    stats_runner: Runner, make_cohort: Callable[..., dict[str, pa.Table]]
) -> None:
    sites = make_cohort(5)
    # site-c's ages lie in [18, 45), so it has no row left.
    params = {
        "columns": ["age", "bmi"],
        "statistics": ALL_STATISTICS,
        "group_by": "sex",
        "quantiles": [{"column": "age", "probs": [0, 0.5, 1]}],
        "filters": [{"column": "age", "op": ">", "value": 70}],
    }
    run = stats_runner(params, sites)
    frame = pooled(sites)
    frame = frame[frame["age"] > 70]

    site_c = run.site_results[0]["site-c/cohort"]["summaries"][0]["cells"]
    assert site_c == [{"group": None, "count": 0, "sum": 0}, {"group": "(missing)", "count": 0, "sum": 0}]
    assert assert_summaries_match(run.result, frame, ALL_STATISTICS) > 0
    assert assert_quantiles_match(run.result, frame) == 15  # all rows, F, M, X and (missing)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_quantiles_equal_pandas_for_random_data_and_probs(
    seed: int, stats_runner: Runner, make_cohort: Callable[..., dict[str, pa.Table]]
) -> None:
    rng = np.random.default_rng(100 + seed)
    sizes = tuple(int(s) for s in rng.integers(1, 400, 3))
    sites = make_cohort(seed, sizes=sizes)
    probs = sorted({0.0, 1.0, 0.5, *(float(p) for p in rng.random(6))})
    column = ["age", "bmi", "score", "delta"][seed % 4]
    params = {"columns": [column], "statistics": ["count"], "quantiles": [{"column": column, "probs": probs}]}
    if seed % 2:
        params["group_by"] = "sex"
    result = stats_runner(params, sites).result
    assert assert_quantiles_match(result, pooled(sites)) >= len(probs)


def test_quantiles_of_tiny_cells_and_an_empty_cell(stats_runner: Runner) -> None:
    sites = {
        "a/t": pa.table({"x": pa.array([2.5, None]), "g": ["one", "two"]}),
        "b/t": pa.table({"x": pa.array([-1.0, 7.0], type=pa.float64()), "g": ["two", "two"]}),
    }
    params = {
        "columns": ["x"],
        "group_by": "g",
        "quantiles": [{"column": "x", "probs": [0, 0.3, 0.5, 0.7, 1]}],
    }
    result = stats_runner(params, sites).result
    frame = pooled(sites)
    assert assert_quantiles_match(result, frame) == 15
    values = {(e["group"], e["prob"]): e["value"] for e in result["quantiles"]}
    assert values[("one", 0.5)] == 2.5
    assert values[("two", 0.5)] == 3.0

    empty = {"a/t": pa.table({"x": pa.array([None, None], type=pa.float64())})}
    result = stats_runner({"quantiles": [{"column": "x", "probs": [0.5]}]}, empty).result
    assert result["quantiles"] == [{"column": "x", "group": None, "prob": 0.5, "value": None}]
    assert result["rounds"] == 1


def test_statistics_default_to_count_mean_std_and_only_requested_ones_are_reported(
    stats_runner: Runner, make_cohort: Callable[..., dict[str, pa.Table]]
) -> None:
    sites = make_cohort(2)
    result = stats_runner({"columns": ["age"]}, sites).result
    assert set(result["summaries"][0]) == {"column", "group", "count", "mean", "std"}
    assert result["rounds"] == 1
    assert result["quantiles"] == []

    raw = stats_runner({"columns": ["age"], "statistics": ["min"]}, sites).site_results[0]["site-a/cohort"]
    # a site sends what the requested statistics need, and no more
    assert set(raw["summaries"][0]["cells"][0]) == {"group", "count", "min"}
