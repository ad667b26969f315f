"""The built-in federated model `stats@1.0.0`: exact pooled summaries, frequency tables, histograms
and quantiles, optionally by group, with small-cell suppression at the sites and after pooling.

Rounds: round 0 gathers every site's sufficient statistics; if quantiles are asked for, rounds 1..
bisect on counts until each needed order statistic is found (about 8 rounds with 255 thresholds).

The final result:

    {"group_by": "sex" | null,
     "summaries":   [{"column", "group", <each requested statistic>}
                     | {"column", "group", "suppressed": true, "reason"}],
     "frequencies": [{"column", "category", "count"} | {"column", "category", "suppressed": true, "reason"}],
     "histograms":  [{"column", "group", "edges", "counts": [int | null], "suppressed": [bool]}],
     "quantiles":   [{"column", "group", "prob", "value"} | {"column", "group", "prob", "suppressed": true,
                      "reason"}],
     "suppressed":  ["summary of age, sex=X: fewer than 10 rows", ...],
     "rounds": 9}

`group` is null for all rows; with `group_by`, one more entry per group (labels as text). Statistics
skip nulls; `count` is the non-null count; `variance`/`std` are sample statistics (ddof=1); a value
that does not exist (mean of no rows, variance of one) or is not finite is null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from custos.computations.base import DalReader, Final, NextRound, Step
from custos.computations.stats_combine import pool_summary_round
from custos.computations.stats_params import StatsParams, columns_used, parse_params, validate_params
from custos.computations.stats_quantiles import Search
from custos.computations.stats_search import (
    QuantileCell,
    apply_search_round,
    plan_searches,
    quantile_cells,
    quantile_entries,
    search_round,
)
from custos.computations.stats_site import quantile_result, read_rows, summary_result
from custos.computations.stats_suppression import filter_site_result
from custos.computations.stats_wire import (
    SiteQuantiles,
    SiteSummary,
    SummaryRound,
    parse_round_input,
    parse_site_result,
)
from custos.core.errors import InvalidInput
from custos.core.schema import DatasetSchema

Json = dict[str, Any]

# Bisection over 2**64 keys with 255 thresholds ends in 8 or 9 rounds; more means a broken state.
MAX_ROUNDS = 1 + 16


def _parse_sites(site_results: Mapping[str, Json]) -> dict[str, SiteSummary | SiteQuantiles]:
    if not site_results:
        raise InvalidInput("there are no site results to aggregate")
    return {
        site: parse_site_result(result, f"the result of {site}")
        for site, result in sorted(site_results.items())
    }


class StatsModel:
    """`stats@1.0.0`. Stateless: everything between rounds is in the orchestrator's `state`."""

    name: str = "stats"
    version: str = "1.0.0"

    def validate_params(
        self, params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]
    ) -> None:
        validate_params(params, schema, columns)

    def columns_used(self, params: Mapping[str, Any]) -> list[str]:
        return columns_used(parse_params(params))

    def start(self, params: Mapping[str, Any]) -> NextRound:
        parse_params(params)
        return NextRound(round_input={"phase": "summary"}, state={"round": 0})

    def compute_site(
        self, dal: DalReader, dataset: str, params: Mapping[str, Any], round_input: Json
    ) -> Json:
        parsed = parse_params(params)
        step = parse_round_input(round_input)
        rows = read_rows(dal, dataset, parsed)
        if isinstance(step, SummaryRound):
            return summary_result(rows, parsed)
        return quantile_result(rows, parsed, step)

    def filter_site_result(self, params: Mapping[str, Any], result: Json, min_count: int) -> Json:
        return filter_site_result(
            parse_params(params), parse_site_result(result, "the site result"), min_count
        )

    def aggregate(
        self, params: Mapping[str, Any], state: Json, site_results: Mapping[str, Json], min_count: int
    ) -> Step:
        parsed = parse_params(params)
        sites = _parse_sites(site_results)
        round_number = int(state.get("round", 0))
        if round_number == 0:
            summaries = {s: r for s, r in sites.items() if isinstance(r, SiteSummary)}
            if len(summaries) != len(sites):
                raise InvalidInput("round 0 expects summary results from every site")
            pooled = pool_summary_round(parsed, summaries, min_count)
            result: Json = {
                "group_by": parsed.group_by,
                "summaries": pooled.summaries,
                "frequencies": pooled.frequencies,
                "histograms": pooled.histograms,
                "suppressed": pooled.notes,
            }
            cells = quantile_cells(parsed, pooled.marks)
            return self._next(parsed, result, cells, plan_searches(parsed, cells), 0)
        if round_number >= MAX_ROUNDS:
            raise InvalidInput(f"the quantile search is still running after {round_number} rounds")
        answers = {s: r for s, r in sites.items() if isinstance(r, SiteQuantiles)}
        if len(answers) != len(sites):
            raise InvalidInput(f"round {round_number} expects quantile results from every site")
        cells = [QuantileCell(**c) for c in state["cells"]]
        searches = [Search(**s) for s in state["searches"]]
        searches = apply_search_round(searches, cells, answers)
        return self._next(parsed, dict(state["result"]), cells, searches, round_number)

    def _next(
        self,
        params: StatsParams,
        result: Json,
        cells: list[QuantileCell],
        searches: list[Search],
        done_round: int,
    ) -> Step:
        if any(not s.done for s in searches):
            state = {
                "round": done_round + 1,
                "result": result,
                "cells": [asdict(c) for c in cells],
                "searches": [s.to_json() for s in searches],
            }
            return NextRound(round_input=search_round(searches, done_round + 1), state=state)
        entries, notes = quantile_entries(params, cells, searches)
        return Final(
            {
                **result,
                "quantiles": entries,
                "suppressed": [*result["suppressed"], *notes],
                "rounds": done_round + 1,
            }
        )
