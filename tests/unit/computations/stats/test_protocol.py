"""The rounds of `stats` at the orchestrator: what it asks for, and refusals of results that do not fit."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from custos.computations.base import NextRound
from custos.computations.stats.model import StatsModel
from custos.core.errors import InvalidInput

MODEL = StatsModel()


def summary(reader: Any, table: pa.Table, params: dict[str, Any]) -> dict[str, Any]:
    raw = MODEL.compute_site(reader({"t": table}), "t", params, {"phase": "summary"})
    return MODEL.filter_site_result(params, raw, 1)


def test_round_zero_asks_for_summaries_and_then_one_search_per_needed_order_statistic(
    arrow_reader: Any,
) -> None:
    params = {"quantiles": [{"column": "x", "probs": [0.0, 0.5, 1.0]}]}
    table = pa.table({"x": [4.0, 1.0, 3.0, 2.0]})
    first = MODEL.start(params)
    assert first.round_input == {"phase": "summary"}
    step = MODEL.aggregate(params, first.state, {"a/t": summary(arrow_reader, table, params)}, 1)
    assert isinstance(step, NextRound)
    searches = step.round_input["searches"]
    # n = 4: prob 0 reads index 0 (and 1), prob 0.5 reads 1 and 2, prob 1 reads 3
    assert [s["id"] for s in searches] == [0, 1, 2, 3]
    assert {s["column"] for s in searches} == {"x"}
    assert step.round_input["thresholds"] == 255
    assert all(s["lo"] < s["hi"] for s in searches)


def test_a_column_of_different_types_at_two_sites_is_refused(arrow_reader: Any) -> None:
    params = {"columns": ["x"]}
    results = {
        "a/t": summary(arrow_reader, pa.table({"x": [1, 2, 3]}), params),
        "b/t": summary(arrow_reader, pa.table({"x": ["1", "2"]}), params),
    }
    with pytest.raises(InvalidInput, match="numeric at a/t but categorical at b/t"):
        MODEL.aggregate(params, {"round": 0}, results, 1)


def test_results_that_do_not_answer_the_round_are_refused(arrow_reader: Any) -> None:
    params = {"quantiles": [{"column": "x", "probs": [0.5]}]}
    table = pa.table({"x": [1.0, 2.0, 3.0]})
    step = MODEL.aggregate(params, {"round": 0}, {"a/t": summary(arrow_reader, table, params)}, 1)
    assert isinstance(step, NextRound)
    with pytest.raises(InvalidInput, match="expects quantile results"):
        MODEL.aggregate(params, step.state, {"a/t": summary(arrow_reader, table, params)}, 1)
    stale = {"phase": "quantiles", "searches": [{"id": 99, "column": "x", "group": None, "counts": [1]}]}
    with pytest.raises(InvalidInput, match="does not answer exactly the searches"):
        MODEL.aggregate(params, step.state, {"a/t": stale}, 1)
    with pytest.raises(InvalidInput, match="no site results"):
        MODEL.aggregate(params, step.state, {}, 1)
    with pytest.raises(InvalidInput, match="phase"):
        MODEL.aggregate(params, step.state, {"a/t": {"phase": "other"}}, 1)
