"""CSV and Parquet files as data sources, read with DuckDB.

Each read opens its own in-memory DuckDB connection, so reads from the DAL's server threads never share
one; the connection lives exactly as long as the stream of record batches it produces.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from custos.core.dal_wire import Filter
from custos.core.errors import InvalidInput
from custos.data.catalog import DatasetEntry
from custos.data.query import build_select, connect
from custos.data.source import DataSource

log = logging.getLogger(__name__)

BATCH_ROWS = 131_072

# The file's path is the table function's own parameter, bound like every other value. CSV columns are
# never sniffed as booleans: DuckDB would read a column of "F" (sex) or "yes"/"no" as true/false.
_CSV_TYPES = "['BIGINT', 'DOUBLE', 'DATE', 'TIMESTAMP', 'VARCHAR']"
_RELATIONS = {"csv": f"read_csv(?, auto_type_candidates={_CSV_TYPES})", "parquet": "read_parquet(?)"}


class FileSource:
    """One CSV or Parquet file. Its schema is read once, on first use, and kept."""

    def __init__(
        self, name: str, path: Path, format: Literal["csv", "parquet"], *, batch_rows: int = BATCH_ROWS
    ) -> None:
        self.name = name
        self.path = path
        self.format = format
        self._relation = _RELATIONS[format]
        self._batch_rows = batch_rows
        self._schema: pa.Schema | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        # The location stays at the gateway: never let it slip into a message that travels.
        return f"FileSource(name={self.name!r}, format={self.format!r})"

    def arrow_schema(self) -> pa.Schema:
        with self._lock:
            if self._schema is None:
                con = connect()
                try:
                    sql = f"SELECT * FROM {self._relation} LIMIT 0"  # noqa: S608 - constant relation
                    self._schema = con.sql(sql, params=[str(self.path)]).to_arrow_table().schema
                except duckdb.Error as exc:
                    raise self._unreadable(exc) from None
                finally:
                    con.close()
            return self._schema

    def relation(self) -> tuple[str, list[object]]:
        """The rows `read` serves as DuckDB SQL and its parameters, for a whole-table aggregate run at the
        gateway: DuckDB then reads the file in parallel, with no Arrow stream in between."""
        return self._relation, [str(self.path)]

    def read(self, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.RecordBatchReader:
        sql, params = build_select(self.arrow_schema(), columns, filters, relation=self._relation)
        con = connect()
        try:
            reader = con.sql(sql, params=[str(self.path), *params]).to_arrow_reader(self._batch_rows)
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


def _batches(con: Any, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader
    finally:
        reader.close()
        con.close()


def open_source(entry: DatasetEntry) -> DataSource:
    """The data source for one catalogue entry."""
    return FileSource(entry.name, entry.path, entry.format)
