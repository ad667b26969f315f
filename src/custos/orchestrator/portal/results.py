"""A job's result as the portal shows it: its tables (each list of records in the result), its
single values, and the charts drawn from it (histograms, GLM coefficients with their intervals,
FedAvg loss and accuracy per round), each chart with the table of its numbers; and as CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

from custos.orchestrator.portal.charts import (
    BarChart,
    IntervalChart,
    LineChart,
    histogram_chart,
    interval_chart,
    line_chart,
)


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[str]
    rows: list[dict[str, Any]]


@dataclass
class ResultView:
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[tuple[BarChart | IntervalChart | LineChart, Table]] = field(default_factory=list)


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "))[:200]
    return value


def result_tables(result: dict[str, Any]) -> list[Table]:
    """Every list of records at the top of the result (or one level down), as a table."""
    tables = []
    for key, value in result.items():
        if _is_records(value):
            columns = list(dict.fromkeys(c for row in value for c in row))
            tables.append(Table(key, columns, [{c: _cell(row.get(c)) for c in columns} for row in value]))
        elif isinstance(value, dict):
            for sub, inner in value.items():
                if _is_records(inner):
                    columns = list(dict.fromkeys(c for row in inner for c in row))
                    rows = [{c: _cell(row.get(c)) for c in columns} for row in inner]
                    tables.append(Table(f"{key}.{sub}", columns, rows))
    return tables


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _charts(result: dict[str, Any]) -> list[tuple[BarChart | IntervalChart | LineChart, Table]]:
    charts: list[tuple[BarChart | IntervalChart | LineChart, Table]] = []
    for hist in result.get("histograms") or []:
        if not isinstance(hist, dict):
            continue
        edges, counts = hist.get("edges") or [], hist.get("counts") or []
        if len(edges) != len(counts) + 1:
            continue
        group = f" ({hist['group']})" if hist.get("group") is not None else ""
        title = f"Histogram of {hist.get('column')}{group}"
        rows = [
            {"from": edges[i], "to": edges[i + 1], "count": "suppressed" if c is None else c}
            for i, c in enumerate(counts)
        ]
        charts.append((histogram_chart(title, edges, counts), Table(title, ["from", "to", "count"], rows)))
    coefficients: Any = result.get("coefficients")
    if _is_records(coefficients) and all("ci_lower" in c for c in coefficients):
        rows4 = [
            (
                str(c.get("name")),
                _number(c.get("estimate")),
                _number(c.get("ci_lower")),
                _number(c.get("ci_upper")),
            )
            for c in coefficients
        ]
        clean = [(n, e or math.nan, lo or math.nan, hi or math.nan) for n, e, lo, hi in rows4]
        title = "Coefficients with 95% intervals"
        table = Table(
            title,
            ["name", "estimate", "ci_lower", "ci_upper"],
            [{"name": n, "estimate": e, "ci_lower": lo, "ci_upper": hi} for n, e, lo, hi in rows4],
        )
        charts.append((interval_chart(title, clean), table))
    history: Any = result.get("history")
    if _is_records(history) and all("round" in h for h in history):
        xs = [float(h["round"]) for h in history]
        for metric in ("loss", "accuracy"):
            series = [
                (f"{part} {metric}", [_number(h.get(f"{part}_{metric}")) for h in history])
                for part in ("train", "holdout")
            ]
            if any(v is not None for _, ys in series for v in ys):
                title = f"{metric.capitalize()} per round"
                columns = ["round", f"train_{metric}", f"holdout_{metric}"]
                rows = [{c: h.get(c) for c in columns} for h in history]
                charts.append((line_chart(title, xs, series), Table(title, columns, rows)))
    return charts


def result_view(result: dict[str, Any]) -> ResultView:
    view = ResultView()
    for key, value in result.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            view.facts.append((key, "—" if value is None else str(value)))
    view.tables = result_tables(result)
    view.charts = _charts(result)
    return view


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=table.columns, extrasaction="ignore")
    writer.writeheader()
    for row in table.rows:
        # A cell that a spreadsheet would read as a formula is written as text.
        writer.writerow(
            {k: f"'{v}" if isinstance(v, str) and v[:1] in "=+-@\t\r" else v for k, v in row.items()}
        )
    return out.getvalue()
