"""The fingerprint of a dataset's rows: the key of its privacy budget, whatever file holds them.

`row_lineage` is the same for every copy of a table that holds the same rows, however it is stored:
Parquet or CSV, rows in any order, columns in any order and under any names. It is one DuckDB pass
over the data at the gateway:

- each value is hashed after normalising it by kind, so that a CSV's inferred types agree with
  Parquet's: a number by its value (an integral float is the integer; other numbers to float32
  precision, so a float32 column and its decimal text agree), a boolean as the text `true`/`false`,
  a date as a date, a timestamp as microseconds since the epoch; null and the empty string are one
  value, as a CSV file cannot tell them apart;
- a row's hash combines its values' hashes without regard to their order, so columns may be
  reordered or renamed;
- the table's fingerprint is the row count, each column's sum of value hashes (sorted, so the columns'
  order does not count) and two sums of row hashes (so the rows' order does not count).

Two different tables may share a fingerprint only by a hash collision, or when they differ only by
values swapped between columns of a row in ways that keep every column's values the same; both are
harmless here: they make two tables share one budget. What it cannot recognise as the same data is
anything that changes a value, a row or a column: a sample, a subset of rows or columns, a column
added, values rounded or perturbed. DuckDB's `hash` is not promised to stay the same across DuckDB
releases; the gateway links each fingerprint to the digest of the file's bytes in its ledger, so an
upgrade that changes one but not the other keeps the budget (`custos.privacy.ledger`).
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

from custos.data.file_source import FileSource
from custos.data.query import connect, quote_identifier
from custos.data.source import DataSource

PREFIX = "rows-v1:"
# The version of the normalisation below: part of what is digested, so that a change to it is a
# change of fingerprint, never a silent collision with the old one.
_VERSION = 1


def row_lineage(source: DataSource) -> str:
    """`rows-v1:` and the SHA-256 of the rows' fingerprint (module docstring)."""
    schema = source.arrow_schema()
    hashes = [f"{_value_hash(field)} AS h{i}" for i, field in enumerate(schema)]
    names = [f"h{i}" for i in range(len(schema))]
    row = " + ".join(f"CAST({h} AS HUGEINT)" for h in names) or "0"
    sums = ", ".join(f"sum({h})" for h in names)
    con = connect()
    try:
        if isinstance(source, FileSource):
            relation, params = source.relation()
        else:
            con.register("src", source.read(schema.names))
            relation, params = "src", []
        # Whole-column expressions over the schema's own, quoted names: no value reaches the SQL.
        sql = (
            f"SELECT count(*) AS n, sum(hash(r)) AS r1, sum(hash(r, {_VERSION})) AS r2"  # noqa: S608
            f"{', ' + sums if sums else ''} FROM (SELECT *, {row} AS r FROM "
            f"(SELECT {', '.join(hashes) or '1'} FROM {relation}))"
        )
        ((n, r1, r2, *columns),) = con.sql(sql, params=params).fetchall()
    finally:
        con.close()
    digest = {
        "version": _VERSION,
        "rows": int(n),
        "columns": sorted(str(int(c or 0)) for c in columns),
        "row_sums": [str(int(r1 or 0)), str(int(r2 or 0))],
    }
    encoded = json.dumps(digest, separators=(",", ":"), sort_keys=True).encode()
    return PREFIX + hashlib.sha256(encoded).hexdigest()


def _value_hash(field: pa.Field) -> str:
    """SQL for one value's hash, normalised by kind (module docstring); 0 for null."""
    column = quote_identifier(field.name)
    kind = field.type
    missing = f"{column} IS NULL"
    if pa.types.is_integer(kind):
        value = f"hash(CAST({column} AS HUGEINT))"
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        number = f"CAST({column} AS DOUBLE)"
        # DuckDB holds NaN equal to itself and above every number: NaN and infinities take the
        # float branch.
        value = (
            f"CASE WHEN {number} = round({number}) AND abs({number}) < 1e18 "
            f"THEN hash(CAST({number} AS HUGEINT)) ELSE hash(CAST({number} AS FLOAT)) END"
        )
    elif pa.types.is_boolean(kind):
        value = f"hash(CASE WHEN {column} THEN 'true' ELSE 'false' END)"
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        missing = f"{missing} OR {column} = ''"
        value = f"hash({column})"
    elif pa.types.is_date(kind):
        value = f"hash(CAST({column} AS DATE))"
    elif pa.types.is_timestamp(kind):
        value = f"hash(epoch_us({column}))"
    else:
        value = f"hash(CAST({column} AS VARCHAR))"
    return f"CASE WHEN {missing} THEN CAST(0 AS UBIGINT) ELSE {value} END"
