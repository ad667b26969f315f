"""Pooling of the round-0 site results at the orchestrator, exactly: counts and sums add, the mean is
the pooled sum over the pooled count, the variance combines each site's (count, mean, M2) with Chan et
al.'s parallel formula (sample variance, ddof=1, as pandas), min/max take the extreme of the sites',
frequency and histogram counts add. Then pooled disclosure control over every table of the result at
once (`stats.disclosure.StatsCells`): a pooled cell is suppressed when a site suppressed it (the
reason names the site) or its pooled count is below min_count, with the same secondary suppression as
at the sites. Then what is published: rounding (`stats.rounding`) and, with `totals_from_cells`, each
all-rows figure as the sum of its published groups. Quantiles are pooled in `stats.search`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from custos.computations.columns import finite
from custos.computations.stats.disclosure import StatsCells
from custos.computations.stats.params import StatsParams
from custos.computations.stats.rounding import published_summary, rounding_note
from custos.computations.stats.wire import (
    MISSING,
    FrequencyCell,
    HistogramCell,
    SiteSummary,
    SummaryCell,
)
from custos.core.errors import InvalidInput
from custos.privacy.controls import DisclosureRules
from custos.privacy.sdc import Cell, extremes_reason, round_count

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


STATISTICS = ("count", "sum", "mean", "variance", "std", "min", "max")


def pool_statistics(parts: Sequence[SummaryCell], statistics: Sequence[str] = STATISTICS) -> Json:
    """The statistics of one pooled cell, from the sites' unsuppressed parts."""
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
    """The final result's summaries, frequencies and histograms, the summary cells' pooled marks (kept
    for quantiles), human-readable notes on what was suppressed, and notes on margins and rounding."""

    summaries: list[Json] = field(default_factory=list)
    frequencies: list[Json] = field(default_factory=list)
    histograms: list[Json] = field(default_factory=list)
    marks: dict[str, dict[str | None, Cell]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    margins: list[str] = field(default_factory=list)


def _groups(labels: Iterable[str | None]) -> list[str | None]:
    """All rows, the groups by label, then "(missing)" when any site has it."""
    present = set(labels)
    named = sorted(g for g in present if g is not None and g != MISSING)
    return [None, *named, *([MISSING] if MISSING in present else [])]


def _omitted(group: str | None, marks: Sequence[Cell]) -> bool:
    """A "(missing)" cell (or row) is left out of the result when it is published and empty."""
    return group == MISSING and all(not m.suppressed and not m.count for m in marks)


def _reason_for(name: str, reason: str | None) -> str:
    """The part of a site's `extremes_reason` about `name` (min or max)."""
    parts = (reason or f"{name}: withheld at a site").split("; ")
    return next((p for p in parts if p.startswith(f"{name}:")), parts[0])


def _withhold_extremes(
    entry: Json, parts: Sequence[SummaryCell], count: int, threshold: int, label: str, notes: list[str]
) -> None:
    """Min and max of a pooled group that is small are withheld; so is each one a site withheld."""
    wanted = [k for k in ("min", "max") if k in entry]
    if not wanted:
        return
    if count < threshold:
        reason = extremes_reason(threshold)
        entry.update(dict.fromkeys(wanted, None), extremes_reason=reason)
        notes.append(f"min and max of {label}: {reason}")
        return
    reasons = []
    for name in wanted:
        withheld = [p for p in parts if p.count and getattr(p, name) is None]
        if withheld:
            entry[name] = None
            reasons.append(_reason_for(name, withheld[0].extremes_reason))
    if reasons:
        entry["extremes_reason"] = "; ".join(dict.fromkeys(reasons))
        notes.append(f"extremes of {label}: {entry['extremes_reason']}")


@dataclass
class _Summary:
    """One numeric column's pooled summary: each group's site parts and pooled mark."""

    column: str
    parts: dict[str | None, list[SummaryCell]]
    marks: dict[str | None, Cell]


def _pool_summary(column: str, tables: Mapping[str, Any]) -> _Summary:
    by_group: dict[str | None, list[tuple[str, SummaryCell]]] = {}
    for site, table in tables.items():
        for cell in table.cells:
            by_group.setdefault(cell.group, []).append((site, cell))
    groups = _groups(by_group)
    marks = {
        g: pooled_mark((s, c.count, c.suppressed, c.reason) for s, c in by_group.get(g, [])) for g in groups
    }
    parts = {g: [c for _, c in by_group.get(g, [])] for g in groups}
    return _Summary(column, parts, marks)


def _summary_entry(
    params: StatsParams, summary: _Summary, group: str | None, rules: DisclosureRules, out: PooledTables
) -> Json:
    mark = summary.marks[group]
    label = f"{summary.column}, {group_label(params.group_by, group)}"
    entry: Json = {"column": summary.column, "group": group}
    if mark.suppressed:
        out.notes.append(f"summary of {label}: {mark.reason}")
        return entry | {"suppressed": True, "reason": mark.reason}
    parts = summary.parts[group]
    values = published_summary(pool_statistics(parts), rules)
    entry |= {s: values[s] for s in params.statistics}
    _withhold_extremes(entry, parts, mark.count or 0, rules.extremes_threshold, label, out.notes)
    return entry


def _summary_total_from_cells(
    params: StatsParams, summary: _Summary, entries: dict[str | None, Json], rules: DisclosureRules
) -> tuple[Json, bool]:
    """The all-rows entry as the sum of the published groups, and whether a group was left out."""
    column = summary.column
    published = [g for g in entries if g is not None and not entries[g].get("suppressed")]
    left_out = any(summary.marks[g].suppressed for g in summary.marks if g is not None)
    if not published:
        reason = "totals_from_cells: every group is suppressed"
        return {"column": column, "group": None, "suppressed": True, "reason": reason}, left_out
    parts = [p for g in published for p in summary.parts[g]]
    count = sum(round_count(summary.marks[g].count, rules) or 0 for g in published)
    values = published_summary(pool_statistics(parts), rules, count=count)
    entry: Json = {"column": column, "group": None, **{s: values[s] for s in params.statistics}}
    withheld = [entries[g]["extremes_reason"] for g in published if "extremes_reason" in entries[g]]
    if withheld and {"min", "max"} & set(entry):
        entry.update({k: None for k in ("min", "max") if k in entry}, extremes_reason=withheld[0])
    elif sum(p.count or 0 for p in parts) < rules.extremes_threshold and {"min", "max"} & set(entry):
        entry.update(
            {k: None for k in ("min", "max") if k in entry},
            extremes_reason=extremes_reason(rules.extremes_threshold),
        )
    return entry, left_out


def _emit_summary(params: StatsParams, summary: _Summary, rules: DisclosureRules, out: PooledTables) -> None:
    entries = {
        group: _summary_entry(params, summary, group, rules, out)
        for group in summary.marks
        if not _omitted(group, [summary.marks[group]])
    }
    if rules.totals_from_cells and len(summary.marks) > 1:
        entries[None], left_out = _summary_total_from_cells(params, summary, entries, rules)
        if left_out:
            out.margins.append(
                f"summary of {summary.column}, all rows: the sum of its published groups "
                "(totals_from_cells); suppressed groups are left out"
            )
    out.summaries += entries.values()


def _pool_frequency(tables: Mapping[str, Sequence[FrequencyCell]]) -> dict[str, Cell]:
    by_category: dict[str, list[tuple[str, FrequencyCell]]] = {}
    for site, cells in tables.items():
        for cell in cells:
            by_category.setdefault(cell.category, []).append((site, cell))
    categories = [c for c in sorted(by_category) if c != MISSING] + (
        [MISSING] if MISSING in by_category else []
    )
    return {
        k: pooled_mark((s, c.count, c.suppressed, c.reason) for s, c in by_category[k]) for k in categories
    }


def _emit_frequency(column: str, marks: dict[str, Cell], rules: DisclosureRules, out: PooledTables) -> None:
    for category, mark in marks.items():
        if _omitted(category, [mark]):
            continue
        if mark.suppressed:
            out.frequencies.append(
                {"column": column, "category": category, "suppressed": True, "reason": mark.reason}
            )
            out.notes.append(f"frequency of {column}={category}: {mark.reason}")
        else:
            out.frequencies.append(
                {"column": column, "category": category, "count": round_count(mark.reported, rules)}
            )


def _pool_histogram(column: str, bins: int, tables: Mapping[str, Any]) -> dict[str | None, list[Cell]]:
    rows: dict[str | None, list[Cell]] = {}
    for group in _groups(c.group for t in tables.values() for c in t.cells):
        site_rows: list[tuple[str, HistogramCell]] = [
            (s, c) for s, t in tables.items() for c in t.cells if c.group == group
        ]
        if any(len(c.counts) != bins + 1 for _, c in site_rows):
            raise InvalidInput(f"a site's histogram of {column!r} does not have {bins} bins and outside")
        rows[group] = [
            pooled_mark((s, c.counts[k], c.is_suppressed(k), c.reason(k)) for s, c in site_rows)
            for k in range(bins + 1)
        ]
    return rows


def _histogram_totals_from_cells(
    rows: dict[str | None, list[Cell]], rules: DisclosureRules
) -> list[int | None]:
    groups = [row for group, row in rows.items() if group is not None]
    totals: list[int | None] = []
    for k in range(len(rows[None])):
        published = [row[k] for row in groups if not row[k].suppressed]
        totals.append(sum(round_count(m.count, rules) or 0 for m in published) if published else None)
    return totals


def _emit_histogram(
    params: StatsParams,
    index: int,
    rows: dict[str | None, list[Cell]],
    rules: DisclosureRules,
    out: PooledTables,
) -> None:
    spec = params.histograms[index]
    bins = len(spec.edges) - 1
    derived = _histogram_totals_from_cells(rows, rules) if rules.totals_from_cells and len(rows) > 1 else None
    for group, row in rows.items():
        if _omitted(group, row):
            continue
        counts = [round_count(m.reported, rules) for m in row]
        suppressed = [m.suppressed for m in row]
        if group is None and derived is not None:
            counts, suppressed = derived, [c is None for c in derived]
            if any(m.suppressed for g, r in rows.items() if g is not None for m in r):
                out.margins.append(
                    f"histogram of {spec.column}, all rows: each bin is the sum of its published groups "
                    "(totals_from_cells); suppressed cells are left out"
                )
        out.histograms.append(
            {
                "column": spec.column,
                "group": group,
                "edges": spec.edges,
                "counts": counts[:bins],
                "suppressed": suppressed[:bins],
                "outside": counts[bins],
                "outside_suppressed": suppressed[bins],
            }
        )
        label = group_label(params.group_by, group)
        for k, mark in enumerate(row):
            if mark.suppressed and not (group is None and derived is not None):
                closing = "]" if k == bins - 1 else ")"
                span = (
                    "outside the edges"
                    if k == bins
                    else f"bin [{spec.edges[k]:g}, {spec.edges[k + 1]:g}{closing}"
                )
                out.notes.append(f"histogram of {spec.column}, {label}, {span}: {mark.reason}")


def _by_column(sites: Mapping[str, SiteSummary], kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for site, result in sites.items():
        for table in getattr(result, kind):
            found.setdefault(table.column, {})[site] = table
    return found


def _check_filtered(sites: Mapping[str, SiteSummary]) -> None:
    for site, result in sites.items():
        site_only = (
            c.largest is not None
            or c.abs_sum is not None
            or c.removed is not None
            or c.min_ties is not None
            or c.max_ties is not None
            for t in result.summaries
            for c in t.cells
        )
        others = [c.removed is not None for t in result.frequencies for c in t.cells]
        others += [c.removed is not None for t in result.histograms for c in t.cells]
        if result.rows is not None or any(site_only) or any(others):
            raise InvalidInput(f"the result of {site} was not filtered by its gateway")


def pool_summary_round(
    params: StatsParams, sites: Mapping[str, SiteSummary], rules: DisclosureRules
) -> PooledTables:
    """Pool every table of round 0, apply pooled disclosure control to all of them together, and lay
    out what is published."""
    _check_filtered(sites)
    summaries, frequencies = _by_column(sites, "summaries"), _by_column(sites, "frequencies")
    histograms = _by_column(sites, "histograms")
    cells = StatsCells()
    pooled: dict[str, _Summary] = {}
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
            pooled[column] = _pool_summary(column, summarised)
            cells.summaries[column] = pooled[column].marks
        elif column in params.columns:
            cells.frequencies[column] = _pool_frequency({s: t.cells for s, t in counted.items()})
        else:
            raise InvalidInput(f"quantile column {column!r} is not numeric at {', '.join(sorted(counted))}")
    for spec in params.histograms:
        tables = histograms.get(spec.column, {})
        missing = sorted(set(sites) - set(tables))
        if missing:
            raise InvalidInput(f"the result of {', '.join(missing)} has no histogram of {spec.column!r}")
        cells.histograms[spec.column] = _pool_histogram(spec.column, len(spec.edges) - 1, tables)
    cells.protect(rules.min_count)

    out = PooledTables()
    for column in wanted:
        if column in pooled:
            marks = pooled[column].marks
            out.marks[column] = {g: m for g, m in marks.items() if not _omitted(g, [m])}
            if column in params.columns:
                _emit_summary(params, pooled[column], rules, out)
        else:
            _emit_frequency(column, cells.frequencies[column], rules, out)
    for index, spec in enumerate(params.histograms):
        _emit_histogram(params, index, cells.histograms[spec.column], rules, out)
    note = rounding_note(rules)
    if note is not None:
        out.margins.insert(0, note)
    return out
