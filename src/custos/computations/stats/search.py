"""The federated quantile search at the orchestrator: which order statistics the quantiles need, the
rounds that find them (all columns x groups x order statistics in parallel), and the final quantile
entries. The bisection itself is in `stats.quantiles`.

Only cells whose pooled summary cell is reported get searched: a cell suppressed by disclosure
control (a site suppressed it, or it has fewer than min_count values) gets suppressed quantiles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from custos.computations.columns import finite
from custos.computations.stats.combine import group_label
from custos.computations.stats.params import StatsParams
from custos.computations.stats.quantiles import (
    THRESHOLDS,
    Search,
    interpolation_points,
    lerp,
    thresholds,
)
from custos.computations.stats.wire import SiteQuantiles
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


def search_round(searches: Sequence[Search], round_number: int) -> Json:
    active = [s for s in searches if not s.done]
    return {
        "phase": "quantiles",
        "round": round_number,
        "thresholds": THRESHOLDS,
        "searches": [
            {"id": s.id, "column": s.column, "group": s.group, "lo": s.lo, "hi": s.hi} for s in active
        ],
    }


def apply_search_round(
    searches: list[Search], cells: list[QuantileCell], sites: Mapping[str, SiteQuantiles]
) -> list[Search]:
    """Narrow every active search with the pooled counts; drop searches of cells a site refused
    (and mark those cells suppressed). Returns the searches that remain."""
    active = {s.id: s for s in searches if not s.done}
    pooled: dict[int, list[int]] = {}
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
            cuts = len(thresholds(search.lo, search.hi, THRESHOLDS))
            if answer.counts is None or len(answer.counts) != cuts:
                raise InvalidInput(f"the result of {site} has {cuts} counts expected for search {sid}")
            pooled[sid] = [a + b for a, b in zip(pooled.get(sid, [0] * cuts), answer.counts, strict=True)]
    for cell in cells:
        reasons = refused.get((cell.column, cell.group))
        if reasons and not cell.suppressed:
            cell.suppressed, cell.count, cell.reason = True, None, "suppressed at " + "; ".join(reasons)
    remaining = [s for s in searches if (s.column, s.group) not in refused]
    for search in remaining:
        if search.id in pooled:
            search.narrow(thresholds(search.lo, search.hi, THRESHOLDS), pooled[search.id])
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
