"""CSV and Parquet files as data sources, read with DuckDB.

Each read opens its own in-memory DuckDB connection, so reads from the DAL's server threads never share
one; the connection lives exactly as long as the stream of record batches it produces.

What computations read is the file with its categories closed (`FileSource.closed`): in a column whose
published categories end in `(other)`, every value they do not list is served as `(other)`, and filters
compare against that, so no computation sees a category too rare to publish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from custos.core.dal_wire import Filter
from custos.core.errors import InvalidInput
from custos.core.schema import OTHER_CATEGORY
from custos.data.catalog import DatasetEntry
from custos.data.query import build_select, connect, quote_identifier

log = logging.getLogger(__name__)

BATCH_ROWS = 131_072

# The file's path is the table function's own parameter, bound like every other value. CSV columns are
# never sniffed as booleans: DuckDB would read a column of "F" (sex) or "yes"/"no" as true/false.
_CSV_TYPES = "['BIGINT', 'DOUBLE', 'DATE', 'TIMESTAMP', 'VARCHAR']"
_RELATIONS = {"csv": f"read_csv(?, auto_type_candidates={_CSV_TYPES})", "parquet": "read_parquet(?)"}


class FileSource:
    """One CSV or Parquet file. Its schema is read once, on first use, and kept."""

    def __init__(
        self,
        name: str,
        path: Path,
        format: Literal["csv", "parquet"],
        *,
        batch_rows: int = BATCH_ROWS,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.format = format
        # Per column, the categories it serves as they are; any other value is served as (other).
        self.categories = {column: tuple(kept) for column, kept in (categories or {}).items()}
        self._relation, self._params = _relation(format, path, self.categories)
        self._batch_rows = batch_rows
        self._schema: pa.Schema | None = None
        self._lock = threading.Lock()

    def closed(self, categories: Mapping[str, Sequence[str]]) -> FileSource:
        """This file as computations read it: in each named string column, a value that its listed
        categories do not hold is served, and filtered on, as `(other)`."""
        fields = {field.name: field.type for field in self.arrow_schema()}
        for column in categories:
            kind = fields.get(column)
            if kind is None or not (
                pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
            ):
                raise InvalidInput(f"dataset {self.name}: column {column!r} is not a string column to close")
        return FileSource(
            self.name, self.path, self.format, batch_rows=self._batch_rows, categories=categories
        )

    def __repr__(self) -> str:
        # The location stays at the gateway: never let it slip into a message that travels.
        return f"FileSource(name={self.name!r}, format={self.format!r})"

    def arrow_schema(self) -> pa.Schema:
        with self._lock:
            if self._schema is None:
                con = connect()
                try:
                    sql = f"SELECT * FROM {self._relation} LIMIT 0"  # noqa: S608 - constant relation
                    self._schema = con.sql(sql, params=self._params).to_arrow_table().schema
                except duckdb.Error as exc:
                    raise self._unreadable(exc) from None
                finally:
                    con.close()
            return self._schema

    def relation(self) -> tuple[str, list[object]]:
        """The rows `read` serves as DuckDB SQL and its parameters, for a whole-table aggregate run at the
        gateway: DuckDB then reads the file in parallel, with no Arrow stream in between."""
        return self._relation, list(self._params)

    def read(self, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.RecordBatchReader:
        sql, params = build_select(self.arrow_schema(), columns, filters, relation=self._relation)
        con = connect()
        try:
            reader = con.sql(sql, params=[*self._params, *params]).to_arrow_reader(self._batch_rows)
        except duckdb.Error as exc:
            con.close()
            raise self._unreadable(exc) from None
        return pa.RecordBatchReader.from_batches(reader.schema, _batches(con, reader))

    def _unreadable(self, exc: Exception) -> InvalidInput:
        # DuckDB's message names the file's location and can quote its rows: it stays in the gateway's log.
        log.warning("dataset %s: DuckDB could not read %s: %s", self.name, self.path, exc)
        return InvalidInput(
            f"dataset {self.name}: the file could not be read as {self.format}; see the gateway log"
        )


def _relation(
    format: Literal["csv", "parquet"], path: Path, categories: Mapping[str, Sequence[str]]
) -> tuple[str, list[object]]:
    """The file as SQL and its parameters, in the order they appear: the closed columns' categories
    (quoted identifiers; the values are bound), then the file's path."""
    relation = _RELATIONS[format]
    if not categories:
        return relation, [str(path)]
    replaced: list[str] = []
    params: list[object] = []
    for column, kept in categories.items():
        name = quote_identifier(column)
        listed = f" OR {name} IN ({', '.join('?' for _ in kept)})" if kept else ""
        replaced.append(f"CASE WHEN {name} IS NULL{listed} THEN {name} ELSE ? END AS {name}")
        params += [*kept, OTHER_CATEGORY]
    # Quoted identifiers of the file's own schema and constant SQL only: every value is bound.
    sql = f"(SELECT * REPLACE ({', '.join(replaced)}) FROM {relation})"  # noqa: S608
    return sql, [*params, str(path)]


def _batches(con: Any, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader
    finally:
        reader.close()
        con.close()


def open_source(entry: DatasetEntry) -> FileSource:
    """The data source for one catalogue entry."""
    return FileSource(entry.name, entry.path, entry.format)
