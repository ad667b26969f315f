"""Profiling a dataset into what may be published about it: its schema and a rounded row count.

Nothing published is a raw data value: numeric bounds are rounded outward to two significant figures and
moved one step further out when rounding left them on the value itself; the row count is rounded to the
nearest 10. Only columns with few distinct values get categories, and a category is published only when
at least `min_count` rows hold it (the policy's minimum cell count): rarer values are one category,
`(other)`, listed last, as a small cell would be suppressed. A boolean column's categories are the two
values of its type, whatever the data holds.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import pyarrow as pa

from custos.core.errors import InvalidInput
from custos.core.schema import OTHER_CATEGORY, ColumnSchema, ColumnType, DatasetSchema
from custos.data.query import connect, quote_identifier
from custos.data.source import DataSource

# HyperLogLog estimates are within a few percent; a margin keeps every truly small column a candidate.
_APPROX_MARGIN = 2
# Without a policy, the default minimum cell count of the disclosure rules.
DEFAULT_MIN_COUNT = 10
BOOLEAN_CATEGORIES = ["false", "true"]


def profile(
    source: DataSource, *, max_categories: int = 50, min_count: int = DEFAULT_MIN_COUNT
) -> tuple[DatasetSchema, int]:
    """The public schema of `source` and its row count rounded to the nearest 10.

    One aggregate pass over every column (counts, bounds, approximate distinct counts), then one pass over
    the few string columns that may be categorical, to count their values exactly. A string column with
    at most `max_categories` distinct values is categorical: its values held by `min_count` rows or more,
    sorted, then `(other)` when any value is held by fewer.
    """
    if min_count < 1:
        raise InvalidInput(f"min_count must be 1 or more, not {min_count}")
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
        if kinds[name] == "string" and int(stats[f"d{i}"] or 0) <= max_categories * _APPROX_MARGIN
    ]
    distinct = _value_counts(source, candidates)
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
        elif kind == "boolean" or (name in distinct and len(distinct[name]) <= max_categories):
            categories = (
                BOOLEAN_CATEGORIES if kind == "boolean" else public_categories(distinct[name], min_count)
            )
            columns.append(
                ColumnSchema(
                    name=name, type=kind, kind="categorical", nullable=nullable, categories=categories
                )
            )
        else:
            columns.append(ColumnSchema(name=name, type=kind, kind="other", nullable=nullable))
    return DatasetSchema(columns=columns), round_count(total)


def public_categories(counts: dict[str, int], min_count: int) -> list[str]:
    """The values held by `min_count` rows or more, sorted, then `(other)` if any value is rarer (a value
    that is itself the text `(other)` counts with them)."""
    kept = sorted(value for value, n in counts.items() if n >= min_count and value != OTHER_CATEGORY)
    return [*kept, OTHER_CATEGORY] if len(kept) < len(counts) else kept


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
        elif kind == "string":
            parts.append(f"approx_count_distinct({col}) AS d{i}")
    return _one_row(source, list(kinds), "SELECT " + ", ".join(parts) + " FROM src")  # noqa: S608


def _value_counts(source: DataSource, names: list[str]) -> dict[str, dict[str, int]]:
    """How many rows hold each non-null value of each named column (the gateway's alone: only
    `public_categories` of it is published)."""
    if not names:
        return {}
    parts = [
        f"histogram(CAST({quote_identifier(n)} AS VARCHAR)) "
        f"FILTER (WHERE {quote_identifier(n)} IS NOT NULL) AS v{i}"
        for i, n in enumerate(names)
    ]
    row = _one_row(source, names, "SELECT " + ", ".join(parts) + " FROM src")  # noqa: S608
    return {name: _as_counts(row[f"v{i}"]) for i, name in enumerate(names)}


def _as_counts(value: object) -> dict[str, int]:
    # DuckDB gives NULL rather than an empty map when the filter leaves no rows.
    return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}


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
