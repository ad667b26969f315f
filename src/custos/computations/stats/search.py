"""The federated quantile search at the orchestrator: which order statistics the quantiles need, the
rounds that find them (all columns x groups x order statistics in parallel), and the final quantile
entries. The bisection itself is in `stats.quantiles`.

Only cells whose pooled summary cell is reported get searched: a cell suppressed by disclosure
control (a site suppressed it, or it has fewer than min_count values) gets suppressed quantiles.
Through gateways the sites' counts arrive masked, and only their sum is read (`stats.masking`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from custos.computations.columns import finite
from custos.computations.stats.combine import group_label
from custos.computations.stats.masking import check_answer, check_pooled, pooled_counts
from custos.computations.stats.params import StatsParams
from custos.computations.stats.quantiles import (
    THRESHOLDS,
    Search,
    interpolation_points,
    lerp,
    thresholds,
)
from custos.computations.stats.wire import SearchCounts, SiteQuantiles
from custos.core.errors import InvalidInput
from custos.privacy.sdc import Cell

Json = dict[str, Any]


@dataclass
class QuantileCell:
    """One (column, group) whose quantiles are asked for, with its pooled count and suppression."""

    column: str
    group: str | None
    count: int | None
    suppressed: bool
    reason: str | None

    @classmethod
    def from_mark(cls, column: str, group: str | None, mark: Cell) -> QuantileCell:
        return cls(column, group, mark.count, mark.suppressed, mark.reason)


def quantile_cells(params: StatsParams, marks: Mapping[str, Mapping[str | None, Cell]]) -> list[QuantileCell]:
    return [
        QuantileCell.from_mark(q.column, group, mark)
        for q in params.quantiles
        for group, mark in marks[q.column].items()
    ]


def plan_searches(params: StatsParams, cells: Sequence[QuantileCell]) -> list[Search]:
    """One search per distinct order statistic that numpy's linear method reads for the probs."""
    searches: list[Search] = []
    for cell in cells:
        if cell.suppressed or not cell.count:
            continue
        n = cell.count
        needed = sorted({i for p in params.probs_for(cell.column) for i in interpolation_points(n, p)[:2]})
        searches += [Search(len(searches) + j, cell.column, cell.group, k) for j, k in enumerate(needed)]
    return searches


def search_round(searches: Sequence[Search], round_number: int, peers: Mapping[str, Json] | None) -> Json:
    active = [s for s in searches if not s.done]
    return {
        "phase": "quantiles",
        "round": round_number,
        "thresholds": THRESHOLDS,
        "searches": [
            {"id": s.id, "column": s.column, "group": s.group, "lo": s.lo, "hi": s.hi} for s in active
        ],
        **({"peers": dict(peers)} if peers is not None else {}),
    }


def apply_search_round(
    searches: list[Search], cells: list[QuantileCell], sites: Mapping[str, SiteQuantiles], *, masked: bool
) -> list[Search]:
    """Narrow every active search with the pooled counts (the sum of the sites' masked counts when
    `masked`); drop searches of cells a site refused (and mark those cells suppressed). Returns the
    searches that remain."""
    active = {s.id: s for s in searches if not s.done}
    answered: dict[int, list[SearchCounts]] = {}
    refused: dict[tuple[str, str | None], list[str]] = {}
    for site, result in sorted(sites.items()):
        answers = {a.id: a for a in result.searches}
        if set(answers) != set(active):
            raise InvalidInput(f"the result of {site} does not answer exactly the searches of this round")
        for sid, answer in answers.items():
            search = active[sid]
            if answer.suppressed:
                refused.setdefault((search.column, search.group), []).append(
                    f"{site}: {answer.reason or 'suppressed'}"
                )
                continue
            check_answer(site, answer, len(thresholds(search.lo, search.hi, THRESHOLDS)), masked)
            answered.setdefault(sid, []).append(answer)
    for cell in cells:
        reasons = refused.get((cell.column, cell.group))
        if reasons and not cell.suppressed:
            cell.suppressed, cell.count, cell.reason = True, None, "suppressed at " + "; ".join(reasons)
    sizes = {(c.column, c.group): c.count or 0 for c in cells}
    remaining = [s for s in searches if (s.column, s.group) not in refused]
    for search in remaining:
        if search.id in answered:
            cuts = thresholds(search.lo, search.hi, THRESHOLDS)
            pooled = pooled_counts(answered[search.id], len(cuts), masked)
            check_pooled(search.id, pooled, sizes[(search.column, search.group)] - search.below)
            search.narrow(cuts, pooled)
    return remaining


def quantile_entries(
    params: StatsParams, cells: Sequence[QuantileCell], searches: Sequence[Search]
) -> tuple[list[Json], list[str]]:
    """The final quantiles (numpy's linear interpolation between the found order statistics) and
    notes on the suppressed ones."""
    found = {(s.column, s.group, s.k): s.value for s in searches if s.done}
    entries: list[Json] = []
    notes: list[str] = []
    for cell in cells:
        probs = params.probs_for(cell.column)
        if cell.suppressed:
            notes.append(
                f"quantiles of {cell.column}, {group_label(params.group_by, cell.group)}: {cell.reason}"
            )
            entries += [
                {
                    "column": cell.column,
                    "group": cell.group,
                    "prob": p,
                    "suppressed": True,
                    "reason": cell.reason,
                }
                for p in probs
            ]
            continue
        for prob in probs:
            value: float | None = None
            if cell.count:
                previous, following, gamma = interpolation_points(cell.count, prob)
                a = found[(cell.column, cell.group, previous)]
                b = found[(cell.column, cell.group, following)]
                value = finite(lerp(a, b, gamma))
            entries.append({"column": cell.column, "group": cell.group, "prob": prob, "value": value})
    return entries, notes
