"""The built-in federated model `stats@1.0.0`: exact pooled summaries, frequency tables, histograms
and quantiles, optionally by group, with small-cell suppression at the sites and after pooling.

Rounds: round 0 gathers every site's sufficient statistics; if quantiles are asked for, rounds 1..
bisect on counts until each needed order statistic is found (about 8 rounds with 255 thresholds). The
gateways mask the bisection's counts so that the orchestrator reads only their sum (`stats.masking`).

The final result:

    {"group_by": "sex" | null,
     "summaries":   [{"column", "group", <each requested statistic>}
                     | {"column", "group", "suppressed": true, "reason"}],
     "frequencies": [{"column", "category", "count"} | {"column", "category", "suppressed": true, "reason"}],
     "histograms":  [{"column", "group", "edges", "counts": [int | null], "suppressed": [bool],
                      "outside": int | null, "outside_suppressed": bool}],
     "quantiles":   [{"column", "group", "prob", "value"} | {"column", "group", "prob", "suppressed": true,
                      "reason"}],
     "suppressed":  ["summary of age, sex=X: fewer than 10 rows", ...],
     "notes":       ["counts are rounded (nearest 5) one by one, ...", ...],
     "rounds": 9}

`group` is null for all rows; with `group_by`, one more entry per group (labels as text), and one for
"(missing)" (rows whose group is null) when there are any; a frequency table counts nulls as the
category "(missing)"; `outside` counts the values outside a histogram's edges. Statistics skip nulls;
`count` is the non-null count; `variance`/`std` are sample statistics (ddof=1); a value that does not
exist (mean of no rows, variance of one) or is not finite is null. `notes` says where a published
figure is not the plain statistic: rounding, and margins made from their published cells.

Disclosure control follows the policy's rules (`stats.disclosure`, `stats.rounding`). Under a policy
with differential privacy the job is one round of noisy releases (`stats.dp`; with `group_by`, one line
per public group and none for all rows), and the result carries
`"dp": {"mechanism", "spent": {site: {"epsilon", "delta"}}, "queries"}` and, from each gateway's
ledger, `"budget": {site: {"spent_epsilon", "cap_epsilon", ...}}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from custos.computations.base import (
    DalReader,
    Disclosure,
    Final,
    JobDataset,
    NextRound,
    Step,
    as_controls,
    as_rules,
)
from custos.computations.stats.combine import group_label, pool_summary_round
from custos.computations.stats.disclosure import filter_site_result
from custos.computations.stats.dp import check_dp_job, filter_dp_result, plan_dp
from custos.computations.stats.dp_pool import pool_dp
from custos.computations.stats.dp_release import dp_site_result
from custos.computations.stats.masking import MASK_KEY, announced_keys, seal_site_result
from custos.computations.stats.params import StatsParams, columns_used, parse_params, validate_params
from custos.computations.stats.quantiles import Search, interpolation_points
from custos.computations.stats.rounding import round_result
from custos.computations.stats.search import (
    QuantileCell,
    apply_search_round,
    plan_searches,
    quantile_cells,
    quantile_entries,
    search_round,
)
from custos.computations.stats.site import quantile_result, read_rows, summary_result
from custos.computations.stats.wire import (
    SiteDp,
    SiteQuantiles,
    SiteSummary,
    SummaryRound,
    parse_round_input,
    parse_site_result,
)
from custos.core.errors import InvalidInput
from custos.core.schema import DatasetSchema
from custos.privacy.controls import DisclosureRules, DpSettings
from custos.privacy.plan import DpPlan
from custos.privacy.sdc import extremes_reason
from custos.privacy.secure_sum import SiteKey

Json = dict[str, Any]

# Bisection over 2**64 keys with 255 thresholds ends in 8 or 9 rounds; more means a broken state.
MAX_ROUNDS = 1 + 16


def _parse_sites(site_results: Mapping[str, Json]) -> dict[str, SiteSummary | SiteQuantiles | SiteDp]:
    if not site_results:
        raise InvalidInput("there are no site results to aggregate")
    return {
        site: parse_site_result(
            {k: v for k, v in result.items() if k not in ("budget", MASK_KEY)}, f"the result of {site}"
        )
        for site, result in sorted(site_results.items())
    }


def _budgets(site_results: Mapping[str, Json]) -> Json:
    """Each gateway's report of the submitter's budget, passed through for display."""
    return {
        site: dict(result["budget"])
        for site, result in sorted(site_results.items())
        if isinstance(result.get("budget"), dict)
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
        dp = step.dp if isinstance(step, SummaryRound) else None
        # Outside DP the gateway's filter needs each cell's rows left out by the filters.
        rows = read_rows(dal, dataset, parsed, complement=dp is None)
        if dp is not None:
            return dp_site_result(rows, parsed, dp)
        if isinstance(step, SummaryRound):
            return summary_result(rows, parsed)
        return quantile_result(rows, parsed, step)

    def filter_site_result(self, params: Mapping[str, Any], result: Json, privacy: Disclosure) -> Json:
        """Under differential privacy (the policy's, or the result's claim) only the DP release may
        leave; otherwise the disclosure rules apply."""
        parsed, site = parse_params(params), parse_site_result(result, "the site result")
        controls = as_controls(privacy)
        if controls.dp is None and not isinstance(site, SiteDp):
            return filter_site_result(parsed, site, controls.disclosure)
        return filter_dp_result(parsed, site, controls)

    def plan_dp(self, params: Mapping[str, Any], schema: DatasetSchema, dp: DpSettings) -> DpPlan:
        return plan_dp(parse_params(params), schema, dp)

    def check_job(self, params: Mapping[str, Any], datasets: Mapping[str, JobDataset]) -> None:
        """Under differential privacy, what would fail the job after its budget was reserved."""
        check_dp_job(parse_params(params), datasets)

    def seal_site_result(
        self, params: Mapping[str, Any], round_input: Json, result: Json, key: SiteKey | None
    ) -> Json:
        """The gateway masks the quantile search's counts (`stats.masking`)."""
        return seal_site_result(parse_params(params), round_input, result, key)

    def aggregate(
        self, params: Mapping[str, Any], state: Json, site_results: Mapping[str, Json], rules: Disclosure
    ) -> Step:
        parsed = parse_params(params)
        disclosure = as_rules(rules)
        sites = _parse_sites(site_results)
        budgets = _budgets(site_results)
        round_number = int(state.get("round", 0))
        if round_number == 0 and any(isinstance(r, SiteDp) for r in sites.values()):
            releases = {s: r for s, r in sites.items() if isinstance(r, SiteDp)}
            if len(releases) != len(sites):
                raise InvalidInput(
                    "some sites sent differentially private results and others exact ones; a job pools "
                    "datasets whose policies agree on differential privacy"
                )
            return Final({**pool_dp(parsed, releases), **({"budget": budgets} if budgets else {})})
        if round_number == 0:
            summaries = {s: r for s, r in sites.items() if isinstance(r, SiteSummary)}
            if len(summaries) != len(sites):
                raise InvalidInput("round 0 expects summary results from every site")
            pooled = pool_summary_round(parsed, summaries, disclosure)
            result: Json = {
                "group_by": parsed.group_by,
                "summaries": pooled.summaries,
                "frequencies": pooled.frequencies,
                "histograms": pooled.histograms,
                "suppressed": pooled.notes,
                "notes": pooled.margins,
            }
            cells = quantile_cells(parsed, pooled.marks)
            threshold = disclosure.extremes_threshold
            for cell in cells:
                if not cell.suppressed and cell.count is not None and 0 < cell.count < threshold:
                    cell.suppressed, cell.count, cell.reason = True, None, extremes_reason(threshold)
            searches = plan_searches(parsed, cells)
            peers = announced_keys(site_results) if searches else None
            return self._next(parsed, result, cells, searches, 0, disclosure, peers)
        if round_number >= MAX_ROUNDS:
            raise InvalidInput(f"the quantile search is still running after {round_number} rounds")
        answers = {s: r for s, r in sites.items() if isinstance(r, SiteQuantiles)}
        if len(answers) != len(sites):
            raise InvalidInput(f"round {round_number} expects quantile results from every site")
        cells = [QuantileCell(**c) for c in state["cells"]]
        searches = [Search(**s) for s in state["searches"]]
        peers = state.get("peers")
        searches = apply_search_round(searches, cells, answers, masked=peers is not None)
        return self._next(parsed, dict(state["result"]), cells, searches, round_number, disclosure, peers)

    def _next(
        self,
        params: StatsParams,
        result: Json,
        cells: list[QuantileCell],
        searches: list[Search],
        done_round: int,
        rules: DisclosureRules,
        peers: Json | None,
    ) -> Step:
        if any(not s.done for s in searches):
            state = {
                "round": done_round + 1,
                "result": result,
                "cells": [asdict(c) for c in cells],
                "searches": [s.to_json() for s in searches],
                "peers": peers,
            }
            return NextRound(round_input=search_round(searches, done_round + 1, peers), state=state)
        entries, notes = quantile_entries(params, cells, searches)
        entries, tails = withhold_tail_quantiles(params, entries, cells, rules)
        final = {
            **result,
            "quantiles": entries,
            "suppressed": [*result["suppressed"], *notes, *tails],
            "rounds": done_round + 1,
        }
        return Final(round_result(final, rules))


def tail_reason(min_rows: int) -> str:
    return (
        f"quantiles among the {min_rows - 1} smallest or largest values are withheld: "
        "each is one person's value"
    )


def withhold_tail_quantiles(
    params: StatsParams, entries: list[Json], cells: Sequence[QuantileCell], rules: DisclosureRules
) -> tuple[list[Json], list[str]]:
    """A quantile read from one of a cell's k - 1 smallest or largest
    values (k the extremes threshold) is withheld, as min and max are: at p = 0 or 1 it is one."""
    k = rules.extremes_threshold
    counts = {(c.column, c.group): c.count for c in cells if not c.suppressed}
    kept: list[Json] = []
    notes: dict[str, None] = {}
    for entry in entries:
        n = counts.get((entry["column"], entry["group"]))
        if entry.get("value") is not None and n:
            previous, following, gamma = interpolation_points(n, entry["prob"])
            used = [previous, following] if 0 < gamma < 1 else [previous]
            if any(i < k - 1 or i > n - k for i in used):
                reason = tail_reason(k)
                label = group_label(params.group_by, entry["group"])
                notes[f"quantiles of {entry['column']}, {label}: {reason}"] = None
                entry = {key: entry[key] for key in ("column", "group", "prob")} | {
                    "suppressed": True,
                    "reason": reason,
                }
        kept.append(entry)
    return kept, list(notes)
