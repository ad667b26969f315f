"""Disclosure control for the tables of the `stats` model, built on the generic rules in
`stats_disclosure`. The gateway runs `filter_site_result` on what leaves the site; the orchestrator
lays out pooled tables the same way (`summary_layout`, `frequency_layout`, `histogram_layout`).

Table shapes, per column:
- summaries: the group cells add up to the all-rows cell (one line, its total reported);
- frequencies: the category cells (one line; its total, the row count, is treated as known);
- histograms: a grid of cells (all rows and each group) x bins; each row is a line (its total, the
  column's count, is treated as known) and each bin is a line over the groups whose total is the
  all-rows bin.
Quantile rounds: a search on a cell that the summary table suppresses is refused, and a site answers
at most two searches (two order statistics) per probability asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from custos.computations.stats_disclosure import Cell, Line, Table, protect_table
from custos.computations.stats_params import StatsParams
from custos.computations.stats_wire import (
    CountTable,
    FrequencyTable,
    HistogramTable,
    SiteQuantiles,
    SiteSummary,
    SummaryTable,
)
from custos.core.errors import InvalidInput

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


def _filter_summary_table(table: SummaryTable, min_count: int) -> Json:
    marks = _summary_cells(table, min_count)
    cells = []
    for cell in table.cells:
        mark = marks[cell.group]
        if mark.suppressed:
            cells.append({"group": cell.group, "suppressed": True, "reason": mark.reason})
        else:
            cells.append({"group": cell.group, **cell.model_dump(exclude_none=True, exclude={"suppressed"})})
    return {"column": table.column, "cells": cells}


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


def _filter_summary_round(result: SiteSummary, min_count: int) -> Json:
    return {
        "phase": "summary",
        "summaries": [_filter_summary_table(t, min_count) for t in result.summaries],
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


def filter_site_result(params: StatsParams, result: SiteSummary | SiteQuantiles, min_count: int) -> Json:
    """Suppress small cells, and the cells that would reveal them, in one site's result."""
    if min_count < 1:
        raise InvalidInput(f"min_count must be at least 1, got {min_count}")
    if isinstance(result, SiteSummary):
        return _filter_summary_round(result, min_count)
    return _filter_quantile_round(params, result, min_count)
