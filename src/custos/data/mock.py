"""Mock tables: the real data's columns and types, plausible values, and not one real row.

Values are drawn from the public schema only (bounds, categories), never from the data. The data is
used for one thing: every generated row is checked against it (an anti-join on all columns) and rows
that equal a real row are drawn again, a bounded number of times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from custos.core.dal_wire import Filter
from custos.core.errors import InvalidInput
from custos.core.schema import ColumnSchema, DatasetSchema
from custos.data.query import MAX_IN_VALUES, private_connect, quote_identifier
from custos.data.source import DataSource

NULL_SHARE = 0.05
# Local redraws against rows already known to be real are cheap; scans of the real data are not.
MAX_SCANS = 20
MAX_LOCAL_DRAWS = 1_000
# The smallest batch of local redraws, and the least accepted share a batch is sized for.
MIN_BATCH = 256
MIN_ACCEPTED = 1 / 64
_EPOCH_DAYS = (date(2000, 1, 1).toordinal(), date(2024, 12, 31).toordinal())
_UNIX_DAY0 = date(1970, 1, 1).toordinal()

Row = tuple[object, ...]


def generate_mock(
    source: DataSource, schema: DatasetSchema, *, rows: int = 200, seed: int | None = None
) -> pa.Table:
    """A table with `schema`'s columns, typed as `source` types them, in which no row is a real row.

    Raises InvalidInput when the public schema allows too few distinct rows to avoid every real one.
    """
    if rows < 0:
        raise InvalidInput(f"rows must be 0 or more, not {rows}")
    if not schema.columns:
        raise InvalidInput(f"dataset {source.name}: the schema has no columns to mock")
    arrow = source.arrow_schema()
    missing = [c.name for c in schema.columns if arrow.get_field_index(c.name) < 0]
    if missing:
        raise InvalidInput(f"dataset {source.name}: the schema names column(s) the data lacks: {missing}")
    target = pa.schema([arrow.field(c.name) for c in schema.columns])
    rng = np.random.default_rng(seed)
    table = _draw(schema, target, rows, rng)
    pending = np.arange(rows)
    known: set[Row] = set()
    for _ in range(MAX_SCANS):
        table = _avoid_known(source.name, schema, target, table, pending, known, rng)
        clashes = _real_matches(source, table.take(_numbers(pending)), target.names)
        if clashes.size == 0:
            return table
        pending = pending[clashes]
        known.update(_rows(table.take(_numbers(pending))))
    raise InvalidInput(
        f"dataset {source.name}: could not draw {rows} mock rows that differ from every real row "
        f"after {MAX_SCANS} checks against the data"
    )


def _avoid_known(
    dataset: str,
    schema: DatasetSchema,
    target: pa.Schema,
    table: pa.Table,
    pending: np.ndarray,
    known: set[Row],
    rng: np.random.Generator,
) -> pa.Table:
    """Redraw the pending rows until none equals a row already found in the data: candidates are drawn
    in batches sized by the share accepted so far (a schema whose rows are nearly all real needs many
    draws per row, and one batch costs about what one row does), at most MAX_LOCAL_DRAWS per row."""
    if not known:
        return table
    redraw = pending
    budget = MAX_LOCAL_DRAWS * int(pending.size)
    accepted = 1.0
    while redraw.size and budget > 0:
        need = int(redraw.size)
        size = min(budget, max(MIN_BATCH, math.ceil(need / max(accepted, MIN_ACCEPTED))))
        budget -= size
        batch = _draw(schema, target, size, rng)
        fresh = [i for i, row in enumerate(_rows(batch)) if row not in known]
        accepted = len(fresh) / size
        take = fresh[:need]
        if take:
            table = _replace(table, redraw[: len(take)], batch.take(_numbers(np.array(take, dtype=np.int64))))
            redraw = redraw[len(take) :]
    if redraw.size == 0:
        return table
    raise InvalidInput(
        f"dataset {dataset}: its public schema allows too few distinct rows to draw mock rows "
        "that differ from every real row"
    )


def _real_matches(source: DataSource, candidates: pa.Table, names: list[str]) -> np.ndarray:
    """Positions (in `candidates`) of the rows that equal some real row, nulls matching nulls."""
    if candidates.num_rows == 0:
        return np.array([], dtype=np.int64)
    position = "__custos_position"
    while position in names:
        position += "_"
    quoted = [quote_identifier(n) for n in names]
    on = " AND ".join(f"m.{q} IS NOT DISTINCT FROM r.{q}" for q in quoted)
    real_columns = ", ".join(f"r.{q}" for q in quoted)
    con = private_connect()  # its optimizer setting is global to the database: one of its own
    try:
        # The real data must stream past a hash table of the few candidates, never the other way round:
        # DuckDB cannot estimate an Arrow stream's size and would otherwise build on it.
        con.sql("SET disabled_optimizers = 'build_side_probe_side'")
        con.register("mock", candidates.append_column(position, _numbers(np.arange(candidates.num_rows))))
        con.register("real", source.read(names, _prefilters(candidates)))
        hits = con.sql(
            f"SELECT DISTINCT {real_columns} FROM real AS r SEMI JOIN mock AS m ON {on}"  # noqa: S608
        ).to_arrow_table()
        con.register("hits", hits)
        found = con.sql(
            f"SELECT m.{quote_identifier(position)} FROM mock AS m SEMI JOIN hits AS r ON {on}"  # noqa: S608
        ).fetchall()
    finally:
        con.close()
    return np.sort(np.array([row[0] for row in found], dtype=np.int64))


def _prefilters(candidates: pa.Table) -> list[Filter]:
    """`in` filters that let the source skip rows no candidate can equal, on columns where `in` is exact.

    They only narrow what the join sees: a column left out (nulls, other types) is still compared there.
    """
    filters: list[Filter] = []
    for field in candidates.schema:
        column = candidates.column(field.name)
        kind = field.type
        exact = (
            pa.types.is_integer(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or pa.types.is_float64(kind)
            or pa.types.is_date32(kind)
        )
        if not exact or column.null_count:
            continue
        values = column.unique().to_pylist()
        if len(values) > MAX_IN_VALUES:
            continue
        filters.append(
            Filter(
                column=field.name,
                op="in",
                value=[v.isoformat() if isinstance(v, date) else v for v in values],
            )
        )
    return filters


def _replace(table: pa.Table, positions: np.ndarray, fresh: pa.Table) -> pa.Table:
    order = np.arange(table.num_rows)
    order[positions] = table.num_rows + np.arange(fresh.num_rows)
    return pa.concat_tables([table, fresh]).take(_numbers(order))


def _rows(table: pa.Table) -> list[Row]:
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return list(zip(*columns, strict=True)) if columns else []


def _draw(schema: DatasetSchema, target: pa.Schema, rows: int, rng: np.random.Generator) -> pa.Table:
    arrays = [_column(column, target.field(column.name).type, rows, rng) for column in schema.columns]
    return pa.Table.from_arrays(arrays, schema=target)


def _column(column: ColumnSchema, kind: pa.DataType, rows: int, rng: np.random.Generator) -> pa.Array:
    mask = rng.random(rows) < NULL_SHARE if column.nullable else np.zeros(rows, dtype=bool)
    values = _values(column, kind, rows, rng)
    if values is None:
        return pa.nulls(rows, type=kind)
    if column.type == "boolean":
        values = pc.equal(values, _strings(["true"] * rows))
    if pa.types.is_decimal(kind):
        values = pc.round(values, ndigits=kind.scale)
    array = pc.if_else(_booleans(mask), pa.nulls(rows, type=values.type), values)
    return array.cast(kind)


# Arrays are built from their buffers, not with `pa.array`, `pa.scalar` or `take` of a NumPy array:
# those import pandas (to look for its types), which would double what a gateway's start costs.


def _numbers(values: np.ndarray) -> pa.Array:
    """An Arrow array of a one-dimensional NumPy array of numbers, without nulls."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def _booleans(values: np.ndarray) -> pa.Array:
    bits = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def _strings(values: Sequence[str]) -> pa.Array:
    encoded = [value.encode() for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(value) for value in encoded], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    )


def _integer_dtype(kind: pa.DataType) -> np.dtype:
    """NumPy's integer type for an Arrow integer type (int64 for any other): without pandas, which
    `DataType.to_pandas_dtype` would import."""
    if not pa.types.is_integer(kind):
        return np.dtype(np.int64)
    return np.dtype(f"{'u' if pa.types.is_unsigned_integer(kind) else 'i'}{kind.bit_width // 8}")


def _values(column: ColumnSchema, kind: pa.DataType, rows: int, rng: np.random.Generator) -> pa.Array | None:
    if column.kind == "numeric":
        if column.min is None or column.max is None:
            return None
        if column.type == "integer":
            # Outward bounds can pass the type's own range (an unsigned column's minimum of 0 becomes -1).
            limits = np.iinfo(_integer_dtype(kind))
            low = max(int(np.ceil(column.min)), int(limits.min))
            high = min(int(np.floor(column.max)), int(limits.max))
            return _numbers(rng.integers(low, max(low, high), size=rows, endpoint=True))
        # About four significant figures, whatever the scale: plausible-looking, never all zero.
        scale = max(abs(column.min), abs(column.max)) or 1.0
        decimals = max(0, 3 - int(np.floor(np.log10(scale))))
        return _numbers(np.round(rng.uniform(column.min, column.max, size=rows), decimals))
    if column.kind == "categorical":
        if not column.categories:
            return None
        return _strings(column.categories).take(_numbers(rng.integers(0, len(column.categories), size=rows)))
    if column.type in ("date", "timestamp"):
        days = rng.integers(_EPOCH_DAYS[0], _EPOCH_DAYS[1] + 1, size=rows) - _UNIX_DAY0
        day_array = _numbers(days.astype(np.int32)).view(pa.date32())
        if column.type == "date":
            return day_array
        return day_array.cast(pa.timestamp("s")).cast(kind)
    if column.type == "string":
        tokens = rng.integers(0, 1 << 24, size=rows)
        return _strings([f"mock-{t:06x}" for t in tokens])
    return None
