"""Pooling of the round-0 site results at the orchestrator, exactly: counts and sums add, the mean is
the pooled sum over the pooled count, the variance combines each site's (count, mean, M2) with Chan et
al.'s parallel formula (sample variance, ddof=1, as pandas), min/max take the extreme of the sites',
frequency and histogram counts add. Then pooled disclosure control: a pooled cell is suppressed when a
site suppressed it (the reason names the site) or its pooled count is below min_count, with the same
secondary suppression as at the sites. Quantiles are pooled in `stats.search`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from custos.computations.columns import finite
from custos.computations.stats.disclosure import frequency_layout, histogram_layout, summary_layout
from custos.computations.stats.params import StatsParams
from custos.computations.stats.wire import (
    FrequencyCell,
    HistogramTable,
    SiteSummary,
    SummaryCell,
    SummaryTable,
)
from custos.core.errors import InvalidInput
from custos.privacy.controls import DisclosureRules
from custos.privacy.sdc import Cell, extremes_reason, protect_table

Json = dict[str, Any]


def group_label(group_by: str | None, group: str | None) -> str:
    return "all rows" if group is None else f"{group_by}={group}"


def pooled_mark(parts: Iterable[tuple[str, int | None, bool, str | None]]) -> Cell:
    """One pooled cell from (site, count, suppressed, reason) parts."""
    parts = list(parts)
    at_sites = [f"{site}: {reason or 'suppressed'}" for site, _, hidden, reason in parts if hidden]
    if at_sites:
        return Cell(None, True, "suppressed at " + "; ".join(at_sites))
    return Cell(sum(count or 0 for _, count, _, _ in parts))


def _chan(parts: Sequence[SummaryCell]) -> tuple[float | None, float | None]:
    """Pooled (mean, M2) from each part's count, mean and M2 (Chan, Golub & LeVeque)."""
    n, mean, m2 = 0, 0.0, 0.0
    for part in parts:
        nb = part.count or 0
        if nb == 0:
            continue
        if part.mean is None or part.m2 is None:
            return None, None
        total = n + nb
        delta = part.mean - mean
        mean += delta * nb / total
        m2 += part.m2 + delta * delta * n * nb / total
        n = total
    return (mean, m2) if n else (None, None)


def _pooled_sum(parts: Sequence[SummaryCell]) -> int | float | None:
    sums = [p.sum for p in parts if p.count]
    if any(s is None for s in sums):
        return None
    if all(isinstance(s, int) for s in sums):
        return sum(int(s) for s in sums if s is not None)
    return math.fsum(float(s) for s in sums if s is not None)


def _extreme(values: Iterable[int | float | None], pick: Any) -> int | float | None:
    present = [v for v in values if v is not None]
    return pick(present) if present else None


def pool_statistics(parts: Sequence[SummaryCell], statistics: Sequence[str]) -> Json:
    """The requested statistics of one pooled cell, from the sites' unsuppressed parts."""
    n = sum(p.count or 0 for p in parts)
    total = _pooled_sum(parts)
    _, m2 = _chan(parts) if {"variance", "std"} & set(statistics) else (None, None)
    variance = m2 / (n - 1) if m2 is not None and n > 1 else None
    values: Json = {
        "count": n,
        "sum": total,
        "mean": total / n if total is not None and n else None,
        "variance": variance,
        "std": math.sqrt(variance) if variance is not None and variance >= 0 else None,
        "min": _extreme((p.min for p in parts if p.count), min),
        "max": _extreme((p.max for p in parts if p.count), max),
    }
    return {s: finite(float(values[s])) if isinstance(values[s], float) else values[s] for s in statistics}


@dataclass
class PooledTables:
    """The final result's summaries, frequencies and histograms, the cells' pooled marks (kept for
    quantiles), and human-readable notes on what was suppressed."""

    summaries: list[Json] = field(default_factory=list)
    frequencies: list[Json] = field(default_factory=list)
    histograms: list[Json] = field(default_factory=list)
    marks: dict[str, dict[str | None, Cell]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _groups(cells: Iterable[Any]) -> list[str | None]:
    return [None, *sorted({c.group for c in cells if c.group is not None})]


def _withhold_extremes(
    entry: Json, parts: Sequence[SummaryCell], threshold: int, label: str, notes: list[str]
) -> None:
    """Min and max of a pooled group that is small, or that a site withheld, are withheld too."""
    if not {"min", "max"} & set(entry):
        return
    withheld = [p.extremes_reason for p in parts if p.extremes_reason]
    if withheld or (entry.get("count") or 0) < threshold:
        reason = withheld[0] if withheld else extremes_reason(threshold)
        entry.update({k: None for k in ("min", "max") if k in entry}, extremes_reason=reason)
        notes.append(f"min and max of {label}: {reason}")


def _pool_summary_table(
    params: StatsParams,
    column: str,
    tables: Mapping[str, SummaryTable],
    rules: DisclosureRules,
    out: PooledTables,
) -> None:
    min_count = rules.min_count
    by_group: dict[str | None, list[tuple[str, SummaryCell]]] = {}
    for site, table in tables.items():
        for cell in table.cells:
            by_group.setdefault(cell.group, []).append((site, cell))
    groups = [None, *sorted(g for g in by_group if g is not None)]
    marks = {
        g: pooled_mark((s, c.count, c.suppressed, c.reason) for s, c in by_group.get(g, [])) for g in groups
    }
    protect_table(summary_layout(marks[None], [marks[g] for g in groups[1:]]), min_count)
    out.marks[column] = marks
    if column not in params.columns:
        return
    for group in groups:
        mark = marks[group]
        entry: Json = {"column": column, "group": group}
        if mark.suppressed:
            entry |= {"suppressed": True, "reason": mark.reason}
            out.notes.append(f"summary of {column}, {group_label(params.group_by, group)}: {mark.reason}")
        else:
            parts = [c for _, c in by_group.get(group, [])]
            entry |= pool_statistics(parts, params.statistics)
            label = f"{column}, {group_label(params.group_by, group)}"
            _withhold_extremes(entry, parts, rules.extremes_threshold, label, out.notes)
        out.summaries.append(entry)


def _pool_frequency_table(
    column: str, tables: Mapping[str, Sequence[FrequencyCell]], min_count: int
) -> list[Json]:
    by_category: dict[str, list[tuple[str, FrequencyCell]]] = {}
    for site, cells in tables.items():
        for cell in cells:
            by_category.setdefault(cell.category, []).append((site, cell))
    categories = sorted(by_category)
    marks = [pooled_mark((s, c.count, c.suppressed, c.reason) for s, c in by_category[k]) for k in categories]
    protect_table(frequency_layout(marks), min_count)
    return [
        {"column": column, "category": k, "suppressed": True, "reason": m.reason}
        if m.suppressed
        else {"column": column, "category": k, "count": m.reported}
        for k, m in zip(categories, marks, strict=True)
    ]


def _pool_histogram(
    params: StatsParams, index: int, tables: Mapping[str, HistogramTable], min_count: int, out: PooledTables
) -> None:
    spec = params.histograms[index]
    bins = len(spec.edges) - 1
    groups = _groups(c for t in tables.values() for c in t.cells)
    rows: dict[str | None, list[Cell]] = {}
    for group in groups:
        site_rows = [(s, c) for s, t in tables.items() for c in t.cells if c.group == group]
        if any(len(c.counts) != bins for _, c in site_rows):
            raise InvalidInput(f"a site's histogram of {spec.column!r} does not have {bins} bins")
        rows[group] = [
            pooled_mark((s, c.counts[b], c.is_suppressed(b), c.reason(b)) for s, c in site_rows)
            for b in range(bins)
        ]
    protect_table(histogram_layout(rows[None], [rows[g] for g in groups[1:]]), min_count)
    for group in groups:
        row = rows[group]
        out.histograms.append(
            {
                "column": spec.column,
                "group": group,
                "edges": spec.edges,
                "counts": [m.reported for m in row],
                "suppressed": [m.suppressed for m in row],
            }
        )
        for b, mark in enumerate(row):
            if mark.suppressed:
                closing = "]" if b == bins - 1 else ")"
                span = f"[{spec.edges[b]:g}, {spec.edges[b + 1]:g}{closing}"
                label = group_label(params.group_by, group)
                out.notes.append(f"histogram of {spec.column}, {label}, bin {span}: {mark.reason}")


def _by_column(sites: Mapping[str, SiteSummary], kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for site, result in sites.items():
        for table in getattr(result, kind):
            found.setdefault(table.column, {})[site] = table
    return found


def pool_summary_round(
    params: StatsParams, sites: Mapping[str, SiteSummary], rules: DisclosureRules
) -> PooledTables:
    """Pool every table of round 0 and apply pooled disclosure control."""
    min_count = rules.min_count
    for site, result in sites.items():
        if result.rows is not None or any(
            c.largest is not None or c.abs_sum is not None for t in result.summaries for c in t.cells
        ):
            raise InvalidInput(f"the result of {site} was not filtered by its gateway")
    summaries, frequencies = _by_column(sites, "summaries"), _by_column(sites, "frequencies")
    histograms = _by_column(sites, "histograms")
    out = PooledTables()
    wanted = [*params.columns, *(q.column for q in params.quantiles if q.column not in params.columns)]
    for column in wanted:
        summarised, counted = summaries.get(column, {}), frequencies.get(column, {})
        if summarised and counted:
            raise InvalidInput(
                f"column {column!r} is numeric at {', '.join(sorted(summarised))} but categorical at "
                f"{', '.join(sorted(counted))}; its type must be the same at every site"
            )
        tables = summarised or counted
        missing = sorted(set(sites) - set(tables))
        if missing:
            raise InvalidInput(f"the result of {', '.join(missing)} has no table for column {column!r}")
        if summarised:
            _pool_summary_table(params, column, summarised, rules, out)
        elif column in params.columns:
            cells = {site: table.cells for site, table in counted.items()}
            entries = _pool_frequency_table(column, cells, min_count)
            out.frequencies += entries
            out.notes += [
                f"frequency of {column}={e['category']}: {e['reason']}"
                for e in entries
                if e.get("suppressed")
            ]
        else:
            raise InvalidInput(f"quantile column {column!r} is not numeric at {', '.join(sorted(counted))}")
    for index, spec in enumerate(params.histograms):
        tables = histograms.get(spec.column, {})
        missing = sorted(set(sites) - set(tables))
        if missing:
            raise InvalidInput(f"the result of {', '.join(missing)} has no histogram of {spec.column!r}")
        _pool_histogram(params, index, tables, min_count, out)
    return out
