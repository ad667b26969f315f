"""Disclosure control for the tables of the `stats` model, built on the one disclosure-control engine,
`custos.privacy.sdc`. The gateway runs `filter_site_result` on what leaves the site; the orchestrator
lays out the pooled tables the same way (`StatsCells`) and protects them again.

Every table of one result is protected together, as one table of the engine, so that a cell hidden in
one is not given away by another. Each margin adds up to the cells that really make it up:

- summaries: the groups, and "(missing)" (rows whose group is null), add up to all rows;
- frequencies: the categories and "(missing)" (null values) add up to the row count, a figure the
  reader may know from elsewhere;
- histograms: each row (all rows, each group, "(missing)") is its bins plus the values outside the
  edges, and adds up to the column's count in that cell: the summary's cell when the result has one
  (so histograms and summaries protect each other), else a count the reader may know; each bin adds
  up over the groups to the all-rows bin.

The policy's other rules (`custos.privacy.controls.DisclosureRules`) apply here too: a cell whose sum
(or mean) the (n, k) dominance rule flags is suppressed like a small one; with filters, a cell that
the filters leave fewer than min_count of its rows out of is suppressed (the rows left out are a cell
of the unfiltered table, which another job may publish); min and max of a group below
`extremes_threshold` are withheld, and so is a min or max that fewer rows than that hold; a
frequency table or grouping over more than `max_levels` levels, and filters leaving fewer than
`min_subset` rows, refuse the whole result (without saying the count).
Rounding applies to the pooled, published figures only (`stats.rounding`).

Quantile rounds: the site sends its round-0 answer again, so the gateway refuses searches on the
cells round 0 suppressed; and it answers at most two searches (two order statistics) per probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from custos.computations.stats.params import StatsParams
from custos.computations.stats.wire import (
    MISSING,
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
__all__ = ["MISSING", "StatsCells", "filter_site_result"]


def filtered_reason(min_count: int) -> str:
    return f"the filters leave out fewer than {min_count} of this cell's rows"


def tied_reason(which: str, min_rows: int) -> str:
    return f"{which}: fewer than {min_rows} rows hold it"


@dataclass
class StatsCells:
    """The cells of one `stats` result, table by table: summaries[column][group] (group None is all
    rows), frequencies[column][category], histograms[column][group] (the bins, then outside)."""

    summaries: dict[str, dict[str | None, Cell]] = field(default_factory=dict)
    frequencies: dict[str, dict[str, Cell]] = field(default_factory=dict)
    histograms: dict[str, dict[str | None, list[Cell]]] = field(default_factory=dict)

    def table(self) -> Table:
        lines: list[Line] = []
        for cells in self.summaries.values():
            groups = [cell for group, cell in cells.items() if group is not None]
            lines.append(Line(groups, total=cells[None]) if groups else Line([cells[None]]))
        lines += [Line(list(cells.values())) for cells in self.frequencies.values()]
        for column, rows in self.histograms.items():
            counts = self.summaries.get(column, {})
            lines += [Line(row, total=counts.get(group)) for group, row in rows.items()]
            grouped = [row for group, row in rows.items() if group is not None]
            if grouped:
                lines += [
                    Line([row[k] for row in grouped], total=rows[None][k]) for k in range(len(rows[None]))
                ]
        return Table(lines)

    def protect(self, min_count: int) -> None:
        protect_table(self.table(), min_count)


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


def _dominated(cell: SummaryCell, rules: DisclosureRules) -> bool:
    rule = rules.dominance
    if rule is None or cell.largest is None or cell.abs_sum is None or not cell.count:
        return False
    return cell.count <= rule.n or is_dominated(cell.largest[: rule.n], cell.abs_sum, rule.k)


def _check_removed(mark: Cell, removed: int | None, min_count: int) -> None:
    if removed is not None and 0 < removed < min_count:
        mark.suppress(filtered_reason(min_count))


def site_cells(result: SiteSummary, rules: DisclosureRules) -> StatsCells:
    """One site's round-0 tables as the engine's cells, with the primary rules that need what only
    the gateway sees (dominance, rows left out by filters) applied; then protected."""
    cells = StatsCells()
    for table in result.summaries:
        _overall_first(table.cells, f"the summary of {table.column!r}")
        marks = {c.group: _cell(c.count, c.suppressed, c.reason) for c in table.cells}
        for cell in table.cells:
            if rules.dominance is not None and _dominated(cell, rules):
                marks[cell.group].suppress(dominance_reason(rules.dominance.n, rules.dominance.k))
            _check_removed(marks[cell.group], cell.removed, rules.min_count)
        cells.summaries[table.column] = marks
    for freq in result.frequencies:
        if len({c.category for c in freq.cells}) != len(freq.cells):
            raise InvalidInput(f"the frequency table of {freq.column!r} lists a category twice")
        cells.frequencies[freq.column] = {
            c.category: _cell(c.count, c.suppressed, c.reason) for c in freq.cells
        }
        for c in freq.cells:
            _check_removed(cells.frequencies[freq.column][c.category], c.removed, rules.min_count)
    for hist in result.histograms:
        overall, groups = _overall_first(hist.cells, f"the histogram of {hist.column!r}")
        width = len(overall.counts)
        if any(
            len(c.counts) != width or (c.removed is not None and len(c.removed) != width) for c in hist.cells
        ):
            raise InvalidInput(f"the histogram of {hist.column!r} has rows of different lengths")
        rows = {}
        for row in [overall, *groups]:
            rows[row.group] = [
                _cell(row.counts[k], row.is_suppressed(k), row.reason(k)) for k in range(width)
            ]
            for k, mark in enumerate(rows[row.group]):
                _check_removed(mark, row.removed[k] if row.removed is not None else None, rules.min_count)
        cells.histograms[hist.column] = rows
    cells.protect(rules.min_count)
    return cells


_SITE_ONLY = {"suppressed", "largest", "abs_sum", "removed", "min_ties", "max_ties"}


def _extremes(entry: Json, cell: SummaryCell, rules: DisclosureRules) -> None:
    """Withhold min and max of a small group, and each one that fewer rows than the threshold hold."""
    if not {"min", "max"} & set(entry):
        return
    threshold = rules.extremes_threshold
    if (cell.count or 0) < threshold:
        entry.pop("min", None)
        entry.pop("max", None)
        entry["extremes_reason"] = extremes_reason(threshold)
        return
    reasons = []
    for name, ties in (("min", cell.min_ties), ("max", cell.max_ties)):
        if name in entry and (ties or 0) < threshold:
            entry.pop(name)
            reasons.append(tied_reason(name, threshold))
    if reasons:
        entry["extremes_reason"] = "; ".join(reasons)


def _summary_output(table: SummaryTable, marks: dict[str | None, Cell], rules: DisclosureRules) -> Json:
    cells = []
    for cell in table.cells:
        mark = marks[cell.group]
        if mark.suppressed:
            cells.append({"group": cell.group, "suppressed": True, "reason": mark.reason})
            continue
        entry = {"group": cell.group, **cell.model_dump(exclude_none=True, exclude=_SITE_ONLY)}
        _extremes(entry, cell, rules)
        cells.append(entry)
    return {"column": table.column, "cells": cells}


def _frequency_output(table: FrequencyTable, marks: dict[str, Cell]) -> Json:
    cells = [
        {"category": c.category, "suppressed": True, "reason": marks[c.category].reason}
        if marks[c.category].suppressed
        else {"category": c.category, "count": c.count}
        for c in table.cells
    ]
    return {"column": table.column, "cells": cells}


def _histogram_output(table: HistogramTable, rows: dict[str | None, list[Cell]]) -> Json:
    cells = [
        {
            "group": cell.group,
            "counts": [m.reported for m in rows[cell.group]],
            "suppressed": [m.suppressed for m in rows[cell.group]],
            "reasons": [m.reason for m in rows[cell.group]],
        }
        for cell in table.cells
    ]
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
    levels = {t.column: sum(c.category != MISSING for c in t.cells) for t in result.frequencies}
    if params.group_by is not None:
        grouped = [sum(c.group not in (None, MISSING) for c in t.cells) for t in result.summaries]
        grouped += [sum(c.group not in (None, MISSING) for c in t.cells) for t in result.histograms]
        levels[params.group_by] = max(grouped, default=0)
    return levels


def _filter_summary_round(params: StatsParams, result: SiteSummary, rules: DisclosureRules) -> Json:
    check_levels(rules, _levels(params, result))
    check_subset(params, rules, result.rows)
    cells = site_cells(result, rules)
    return {
        "phase": "summary",
        "summaries": [_summary_output(t, cells.summaries[t.column], rules) for t in result.summaries],
        "frequencies": [_frequency_output(t, cells.frequencies[t.column]) for t in result.frequencies],
        "histograms": [_histogram_output(t, cells.histograms[t.column]) for t in result.histograms],
    }


def _filter_quantile_round(params: StatsParams, result: SiteQuantiles, rules: DisclosureRules) -> Json:
    if result.summary is None:
        raise InvalidInput("a quantile round result must carry the site's summary for the gateway's filter")
    check_levels(rules, _levels(params, result.summary))
    marks = {
        (column, group): mark
        for column, groups in site_cells(result.summary, rules).summaries.items()
        for group, mark in groups.items()
    }
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
            raise InvalidInput(f"the summary has no all-rows count for quantile column {search.column!r}")
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
    return _filter_quantile_round(params, result, rules)
