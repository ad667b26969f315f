"""Disclosure control for the tables of the `stats` model, built on the one disclosure-control engine,
`custos.privacy.sdc`. The gateway runs `filter_site_result` on what leaves the site; the orchestrator
lays out pooled tables the same way (`summary_layout`, `frequency_layout`, `histogram_layout`).

Table shapes, per column:
- summaries: the group cells add up to the all-rows cell (one line, its total reported);
- frequencies: the category cells (one line; its total, the row count, is treated as known);
- histograms: a grid of cells (all rows and each group) x bins; each row is a line (its total, the
  column's count, is treated as known) and each bin is a line over the groups whose total is the
  all-rows bin.
Quantile rounds: a search on a cell that the summary table suppresses is refused, and a site answers
at most two searches (two order statistics) per probability asked for.

The policy's other rules (`custos.privacy.controls.DisclosureRules`) apply here too: a cell whose sum
(or mean) the (n, k) dominance rule flags is suppressed like a small one; min and max of a group below
`extremes_threshold` are withheld; a frequency table or grouping over more than `max_levels` levels,
and filters leaving fewer than `min_subset` rows, refuse the whole result (without saying the count).
Rounding applies to the published, pooled counts only (`stats.rounding`), so that pooled means stay
exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from custos.computations.stats.params import StatsParams
from custos.computations.stats.wire import (
    CountTable,
    FrequencyTable,
    HistogramTable,
    SiteQuantiles,
    SiteSummary,
    SummaryCell,
    SummaryTable,
)
from custos.core.errors import InvalidInput, PolicyDenied
from custos.privacy.controls import DisclosureRules
from custos.privacy.sdc import (
    Cell,
    Line,
    Table,
    dominance_reason,
    extremes_reason,
    is_dominated,
    protect_table,
)

Json = dict[str, Any]


def summary_layout(overall: Cell, groups: Sequence[Cell]) -> Table:
    return Table([Line(list(groups), total=overall)] if groups else [Line([overall])])


def frequency_layout(categories: Sequence[Cell]) -> Table:
    return Table([Line(list(categories))])


def histogram_layout(overall: Sequence[Cell], groups: Sequence[Sequence[Cell]]) -> Table:
    lines = [Line(list(row)) for row in [overall, *groups]]
    if groups:
        lines += [Line([row[b] for row in groups], total=overall[b]) for b in range(len(overall))]
    return Table(lines)


def _overall_first(cells: Sequence[Any], what: str) -> tuple[Any, list[Any]]:
    overall = [c for c in cells if c.group is None]
    if len(overall) != 1:
        raise InvalidInput(f"{what} must have exactly one all-rows cell (group null)")
    groups = [c for c in cells if c.group is not None]
    if len({c.group for c in groups}) != len(groups):
        raise InvalidInput(f"{what} lists a group twice")
    return overall[0], groups


def _cell(count: int | None, suppressed: bool, reason: str | None) -> Cell:
    if not suppressed and count is None:
        raise InvalidInput("a cell that is not suppressed must carry its count")
    return Cell(None if suppressed else count, suppressed, reason if suppressed else None)


def _summary_cells(table: SummaryTable | CountTable, min_count: int) -> dict[str | None, Cell]:
    overall, groups = _overall_first(table.cells, f"the summary of {table.column!r}")
    marks = {
        c.group: _cell(c.count, getattr(c, "suppressed", False), getattr(c, "reason", None))
        for c in [overall, *groups]
    }
    protect_table(summary_layout(marks[None], [marks[g.group] for g in groups]), min_count)
    return marks


def _dominated(cell: SummaryCell, rules: DisclosureRules) -> bool:
    rule = rules.dominance
    if rule is None or cell.largest is None or cell.abs_sum is None or not cell.count:
        return False
    return cell.count <= rule.n or is_dominated(cell.largest[: rule.n], cell.abs_sum, rule.k)


_SITE_ONLY = {"suppressed", "largest", "abs_sum"}


def _filter_summary_table(table: SummaryTable, rules: DisclosureRules) -> Json:
    overall, groups = _overall_first(table.cells, f"the summary of {table.column!r}")
    marks = {c.group: _cell(c.count, c.suppressed, c.reason) for c in [overall, *groups]}
    if rules.dominance is not None:
        for cell in table.cells:
            if _dominated(cell, rules):
                marks[cell.group].suppress(dominance_reason(rules.dominance.n, rules.dominance.k))
    protect_table(summary_layout(marks[None], [marks[g.group] for g in groups]), rules.min_count)
    threshold = rules.extremes_threshold
    cells = []
    for cell in table.cells:
        mark = marks[cell.group]
        if mark.suppressed:
            cells.append({"group": cell.group, "suppressed": True, "reason": mark.reason})
            continue
        entry = {"group": cell.group, **cell.model_dump(exclude_none=True, exclude=_SITE_ONLY)}
        if (cell.count or 0) < threshold and ("min" in entry or "max" in entry):
            entry.pop("min", None)
            entry.pop("max", None)
            entry["extremes_reason"] = extremes_reason(threshold)
        cells.append(entry)
    return {"column": table.column, "cells": cells}


def check_levels(rules: DisclosureRules, levels: dict[str, int]) -> None:
    """DataSHIELD's max_levels: refuse a frequency table or grouping over too many levels."""
    if rules.max_levels is not None:
        for column, count in levels.items():
            if count > rules.max_levels:
                raise PolicyDenied(
                    f"column {column!r} has more than {rules.max_levels} levels at this site; the policy "
                    "allows frequency tables and group_by only over columns with at most that many"
                )


def check_subset(params: StatsParams, rules: DisclosureRules, rows: int | None) -> None:
    """DataSHIELD's min_subset: the researcher's filters must leave enough rows at the site."""
    if rules.min_subset is not None and params.filters and (rows is None or rows < rules.min_subset):
        raise PolicyDenied(
            f"the filters leave fewer than {rules.min_subset} rows at this site (the policy's "
            "min_subset); widen them"
        )


def _levels(params: StatsParams, result: SiteSummary) -> dict[str, int]:
    levels = {t.column: len(t.cells) for t in result.frequencies}
    if params.group_by is not None:
        grouped = [len(t.cells) - 1 for t in result.summaries]
        grouped += [len(t.cells) - 1 for t in result.histograms]
        levels[params.group_by] = max(grouped, default=0)
    return levels


def _filter_frequency_table(table: FrequencyTable, min_count: int) -> Json:
    if len({c.category for c in table.cells}) != len(table.cells):
        raise InvalidInput(f"the frequency table of {table.column!r} lists a category twice")
    marks = [_cell(c.count, c.suppressed, c.reason) for c in table.cells]
    protect_table(frequency_layout(marks), min_count)
    cells = [
        {"category": c.category, "suppressed": True, "reason": m.reason}
        if m.suppressed
        else {"category": c.category, "count": c.count}
        for c, m in zip(table.cells, marks, strict=True)
    ]
    return {"column": table.column, "cells": cells}


def _filter_histogram_table(table: HistogramTable, min_count: int) -> Json:
    overall, groups = _overall_first(table.cells, f"the histogram of {table.column!r}")
    bins = len(overall.counts)
    if any(len(c.counts) != bins for c in groups):
        raise InvalidInput(f"the histogram of {table.column!r} has rows of different lengths")
    rows = {
        c.group: [_cell(c.counts[b], c.is_suppressed(b), c.reason(b)) for b in range(bins)]
        for c in [overall, *groups]
    }
    protect_table(histogram_layout(rows[None], [rows[g.group] for g in groups]), min_count)
    cells = []
    for cell in table.cells:
        row = rows[cell.group]
        cells.append(
            {
                "group": cell.group,
                "counts": [m.reported for m in row],
                "suppressed": [m.suppressed for m in row],
                "reasons": [m.reason for m in row],
            }
        )
    return {"column": table.column, "cells": cells}


def _filter_summary_round(params: StatsParams, result: SiteSummary, rules: DisclosureRules) -> Json:
    check_levels(rules, _levels(params, result))
    check_subset(params, rules, result.rows)
    min_count = rules.min_count
    return {
        "phase": "summary",
        "summaries": [_filter_summary_table(t, rules) for t in result.summaries],
        "frequencies": [_filter_frequency_table(t, min_count) for t in result.frequencies],
        "histograms": [_filter_histogram_table(t, min_count) for t in result.histograms],
    }


def _filter_quantile_round(params: StatsParams, result: SiteQuantiles, min_count: int) -> Json:
    if result.count_tables is None:
        raise InvalidInput("a quantile round result must carry count_tables for the gateway's filter")
    marks = {(t.column, g): m for t in result.count_tables for g, m in _summary_cells(t, min_count).items()}
    asked: dict[tuple[str, str | None], int] = {}
    searches = []
    for search in result.searches:
        cell = (search.column, search.group)
        limit = 2 * len(params.probs_for(search.column))
        asked[cell] = asked.get(cell, 0) + 1
        if asked[cell] > limit:
            raise InvalidInput(
                f"the round asks for {asked[cell]} or more order statistics of {search.column!r} "
                f"(group {search.group!r}); the params allow at most {limit}"
            )
        mark = marks.get(cell)
        if mark is None and search.group is None:
            raise InvalidInput(f"count_tables has no all-rows count for quantile column {search.column!r}")
        if mark is not None and mark.suppressed:
            searches.append(
                {
                    **search.model_dump(include={"id", "column", "group"}),
                    "suppressed": True,
                    "reason": mark.reason,
                }
            )
        else:
            searches.append(search.model_dump(include={"id", "column", "group", "counts"}))
    return {"phase": "quantiles", "searches": searches}


def filter_site_result(
    params: StatsParams, result: SiteSummary | SiteQuantiles, rules: DisclosureRules
) -> Json:
    """Apply the policy's disclosure rules to one site's exact result: suppress small and dominated
    cells, and the cells that would reveal them. (Under differential privacy the gateway checks the
    noisy release instead: `stats.dp.filter_dp_result`.)"""
    if isinstance(result, SiteSummary):
        return _filter_summary_round(params, result, rules)
    if params.group_by is not None and rules.max_levels is not None and result.count_tables:
        check_levels(rules, {params.group_by: max(len(t.cells) - 1 for t in result.count_tables)})
    return _filter_quantile_round(params, result, rules.min_count)
