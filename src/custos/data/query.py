"""The one SQL statement every row read runs: a projection and filters over a relation.

Identifiers come only from the relation's own schema (an allow-list) and are quoted; filter values are
always bound parameters, never formatted into the SQL (docs/threats.md, A6). Every reader of rows — the file
sources at the gateway and the in-memory reader used for tests and mock runs — builds its statement
here, so filters mean the same thing everywhere:

- comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`) and `in` / `not_in` never match a null value, as in SQL;
- `is_null` / `not_null` take no value;
- a value must suit the column: a number for integer/float columns, a string for string columns, a bool for
  boolean columns, an ISO date or timestamp string for date/timestamp columns.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime

import duckdb
import pyarrow as pa

from custos.core.dal_wire import Filter, Scalar
from custos.core.errors import InvalidInput, PermissionDenied

MAX_IN_VALUES = 10_000

_COMPARISONS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def private_connect() -> duckdb.DuckDBPyConnection:
    """A connection to a fresh in-memory DuckDB database of its own, for work that changes a global
    setting (one no other read may see). Starting a database costs tens of milliseconds of CPU."""
    con = duckdb.connect()
    # DuckDB draws a progress bar on the terminal for long queries; a server must stay quiet.
    con.sql("SET enable_progress_bar = false")
    return con


_shared_lock = threading.Lock()
# The process's shared in-memory database and the process it was started in (a forked child starts its own).
_shared: tuple[int, duckdb.DuckDBPyConnection] | None = None
_inherited: list[duckdb.DuckDBPyConnection] = []


def connect() -> duckdb.DuckDBPyConnection:
    """A new connection of its own (each read gets one: connections are not shared by threads) to the
    process's shared in-memory database, which holds no data: what a read registers on its connection is
    a temporary view that no other connection sees. A new connection to a running database costs
    microseconds; starting a database per read cost a small task more CPU than the rest of its path.
    Work that changes a global setting takes `private_connect` instead."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid():
            if _shared is not None:
                # The parent's database, in a forked child: kept, never closed here (its threads are
                # the parent's), never used.
                _inherited.append(_shared[1])
            _shared = (os.getpid(), private_connect())
        return _shared[1].cursor()


def quote_identifier(name: str) -> str:
    """A SQL identifier for `name`, safe whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def columns_used(columns: Iterable[str], filters: Iterable[Filter]) -> set[str]:
    """Every column a read touches: the ones it returns and the ones its filters look at."""
    return set(columns) | {f.column for f in filters}


def check_grant(
    dataset: str,
    granted: Collection[str],
    columns: Iterable[str],
    filters: Iterable[Filter],
) -> None:
    """Raise PermissionDenied unless every column the read returns or filters on is granted."""
    missing = sorted(columns_used(columns, filters) - set(granted))
    if missing:
        raise PermissionDenied(
            f"column(s) {', '.join(missing)} of dataset {dataset} are not granted to this task; "
            f"granted: {', '.join(sorted(granted)) or 'none'}"
        )


def build_select(
    schema: pa.Schema, columns: Sequence[str], filters: Sequence[Filter], *, relation: str
) -> tuple[str, list[object]]:
    """`SELECT <columns> FROM <relation> WHERE <filters>` and its parameters, in order.

    `relation` is trusted SQL written by the caller (a view name or a table function with its own
    leading parameters); nothing from `columns` or `filters` reaches the SQL text except as a quoted
    identifier that the schema holds.
    """
    if not columns:
        raise InvalidInput("columns: name at least one column to read")
    fields = {field.name: field for field in schema}
    seen: set[str] = set()
    for name in columns:
        _field(fields, name)
        if name in seen:
            raise InvalidInput(f"columns: column {name!r} is named twice; name each column once")
        seen.add(name)
    conditions: list[str] = []
    params: list[object] = []
    for flt in filters:
        condition, values = _condition(_field(fields, flt.column), flt)
        conditions.append(condition)
        params.extend(values)
    projection = ", ".join(quote_identifier(c) for c in columns)
    sql = f"SELECT {projection} FROM {relation}"  # noqa: S608 - quoted, schema-checked identifiers only
    if conditions:
        sql += " WHERE " + " AND ".join(f"({c})" for c in conditions)
    return sql, params


def _field(fields: dict[str, pa.Field], name: str) -> pa.Field:
    field = fields.get(name)
    if field is None:
        raise InvalidInput(f"unknown column {name!r}; the dataset has: {', '.join(fields)}")
    return field


def _condition(field: pa.Field, flt: Filter) -> tuple[str, list[object]]:
    column = quote_identifier(field.name)
    if flt.op in ("is_null", "not_null"):
        if flt.value is not None:
            raise InvalidInput(f"filter on column {field.name!r}: op {flt.op!r} takes no value")
        return f"{column} IS {'NOT ' if flt.op == 'not_null' else ''}NULL", []
    if flt.op in ("in", "not_in"):
        if not isinstance(flt.value, list) or not 1 <= len(flt.value) <= MAX_IN_VALUES:
            raise InvalidInput(
                f"filter on column {field.name!r}: op {flt.op!r} needs a list of 1 to {MAX_IN_VALUES} values"
            )
        values = [_parameter(field, v) for v in flt.value]
        marks = ", ".join("?" for _ in values)
        return f"{column} {'NOT ' if flt.op == 'not_in' else ''}IN ({marks})", values
    if flt.value is None or isinstance(flt.value, list):
        raise InvalidInput(f"filter on column {field.name!r}: op {flt.op!r} needs one value")
    return f"{column} {_COMPARISONS[flt.op]} ?", [_parameter(field, flt.value)]


def _parameter(field: pa.Field, value: Scalar) -> object:
    """The value as a parameter of the column's type, or InvalidInput saying what the column accepts."""
    kind = field.type
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    where = f"filter on column {field.name!r}: value {shown}"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{where} is not a number; the column holds numbers")
        if isinstance(value, float) and math.isnan(value):
            raise InvalidInput(f"{where} matches nothing; use is_null for missing values")
        return value
    if pa.types.is_boolean(kind):
        if not isinstance(value, bool):
            raise InvalidInput(f"{where} is not a boolean; the column holds true/false")
        return value
    if _is_string(kind):
        if not isinstance(value, str):
            raise InvalidInput(f"{where} is not a string; the column holds strings")
        return value
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        is_date = pa.types.is_date(kind)
        if isinstance(value, str):
            try:
                return date.fromisoformat(value) if is_date else datetime.fromisoformat(value)
            except ValueError:
                pass
        example = "an ISO date like 2024-01-31" if is_date else "an ISO timestamp like 2024-01-31T12:00:00"
        raise InvalidInput(f"{where} is not accepted; the column takes {example}")
    raise InvalidInput(
        f"filter on column {field.name!r}: columns of type {kind} cannot be filtered; "
        "filter on number, string, boolean, date or timestamp columns"
    )


def _is_string(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))
