"""Profiling a dataset into what may be published about it: its schema and a rounded row count.

Nothing published is a raw data value: numeric bounds are rounded outward to two significant figures and
moved one step further out when rounding left them on the value itself; the row count is rounded to the
nearest 10. Categories are published as they are, so only columns with few distinct values get them.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import pyarrow as pa

from custos.core.errors import InvalidInput
from custos.core.schema import ColumnSchema, ColumnType, DatasetSchema
from custos.data.query import connect, quote_identifier
from custos.data.source import DataSource

# HyperLogLog estimates are within a few percent; a margin keeps every truly small column a candidate.
_APPROX_MARGIN = 2


def profile(source: DataSource, *, max_categories: int = 50) -> tuple[DatasetSchema, int]:
    """The public schema of `source` and its row count rounded to the nearest 10.

    One aggregate pass over every column (counts, bounds, approximate distinct counts), then one pass over
    the few string and boolean columns that may be categorical, to list their values exactly.
    """
    arrow = source.arrow_schema()
    kinds = {field.name: _column_type(source.name, field) for field in arrow}
    names = list(kinds)
    if not names:
        raise InvalidInput(f"dataset {source.name}: the data has no columns")
    stats = _aggregate(source, kinds)
    total = int(stats["n"])
    candidates = [
        name
        for i, name in enumerate(names)
        if kinds[name] in ("string", "boolean")
        and int(stats[f"d{i}"] or 0) <= max_categories * _APPROX_MARGIN
    ]
    distinct = _distinct_values(source, candidates)
    columns: list[ColumnSchema] = []
    for i, name in enumerate(names):
        kind = kinds[name]
        nullable = int(stats[f"nn{i}"]) < total
        if kind in ("integer", "float"):
            low, high = stats[f"lo{i}"], stats[f"hi{i}"]
            bounds = outward_bounds(float(low), float(high)) if low is not None and high is not None else None
            columns.append(
                ColumnSchema(
                    name=name,
                    type=kind,
                    kind="numeric",
                    nullable=nullable,
                    min=bounds[0] if bounds else None,
                    max=bounds[1] if bounds else None,
                )
            )
        elif name in distinct and (kind == "boolean" or len(distinct[name]) <= max_categories):
            columns.append(
                ColumnSchema(
                    name=name, type=kind, kind="categorical", nullable=nullable, categories=distinct[name]
                )
            )
        else:
            columns.append(ColumnSchema(name=name, type=kind, kind="other", nullable=nullable))
    return DatasetSchema(columns=columns), round_count(total)


def round_count(count: int) -> int:
    """`count` rounded to the nearest 10, halves up."""
    return (count + 5) // 10 * 10


def outward_bounds(low: float, high: float) -> tuple[float, float]:
    """Bounds strictly outside [low, high], each rounded to two significant figures."""
    scale = max(abs(low), abs(high))
    # A zero bound has no digits of its own; step by the other bound's second figure instead.
    zero_step = _step(Decimal(repr(scale))) if scale else Decimal(1)
    return _outward(low, ROUND_FLOOR, zero_step), _outward(high, ROUND_CEILING, zero_step)


def _step(value: Decimal) -> Decimal:
    """The place value of `value`'s second significant figure."""
    return Decimal(1).scaleb(value.adjusted() - 1)


def _outward(value: float, rounding: str, zero_step: Decimal) -> float:
    exact = Decimal(repr(value))
    step = _step(exact) if exact else zero_step
    rounded = (exact / step).to_integral_value(rounding=rounding) * step
    if rounded == exact:
        rounded = rounded - step if rounding == ROUND_FLOOR else rounded + step
    return float(rounded)


def _column_type(dataset: str, field: pa.Field) -> ColumnType:
    kind = field.type
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "float"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "string"
    if pa.types.is_date(kind):
        return "date"
    if pa.types.is_timestamp(kind):
        return "timestamp"
    raise InvalidInput(
        f"dataset {dataset}: column {field.name!r} has type {kind}, which cannot be published; "
        "use integer, float, boolean, string, date or timestamp columns"
    )


def _aggregate(source: DataSource, kinds: dict[str, ColumnType]) -> dict[str, Any]:
    parts = ["count(*) AS n"]
    for i, (name, kind) in enumerate(kinds.items()):
        col = quote_identifier(name)
        parts.append(f"count({col}) AS nn{i}")
        if kind == "float":
            # NaN and infinities are not bounds anyone can use; DuckDB orders NaN above every number.
            finite = f"CASE WHEN isfinite(CAST({col} AS DOUBLE)) THEN CAST({col} AS DOUBLE) END"
            parts += [f"min({finite}) AS lo{i}", f"max({finite}) AS hi{i}"]
        elif kind == "integer":
            parts += [f"CAST(min({col}) AS DOUBLE) AS lo{i}", f"CAST(max({col}) AS DOUBLE) AS hi{i}"]
        elif kind in ("string", "boolean"):
            parts.append(f"approx_count_distinct({col}) AS d{i}")
    return _one_row(source, list(kinds), "SELECT " + ", ".join(parts) + " FROM src")  # noqa: S608


def _distinct_values(source: DataSource, names: list[str]) -> dict[str, list[str]]:
    if not names:
        return {}
    parts = [
        f"list(DISTINCT CAST({quote_identifier(n)} AS VARCHAR)) "
        f"FILTER (WHERE {quote_identifier(n)} IS NOT NULL) AS v{i}"
        for i, n in enumerate(names)
    ]
    row = _one_row(source, names, "SELECT " + ", ".join(parts) + " FROM src")  # noqa: S608
    return {name: sorted(_as_list(row[f"v{i}"])) for i, name in enumerate(names)}


def _as_list(value: object) -> list[str]:
    # DuckDB gives NULL rather than an empty list when the filter leaves no rows.
    return [str(v) for v in value] if isinstance(value, list) else []


def _one_row(source: DataSource, columns: list[str], sql: str) -> dict[str, Any]:
    con = connect()
    try:
        con.register("src", source.read(columns))
        relation = con.sql(sql)
        names = relation.columns
        (row,) = relation.fetchall()
    finally:
        con.close()
    return dict(zip(names, row, strict=True))
