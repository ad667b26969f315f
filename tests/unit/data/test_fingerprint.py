"""The rows' fingerprint: one value for every copy of the same rows (format, row order, column order and
names), another as soon as a value, a row or a column differs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from custos.core.dal_wire import Filter
from custos.data.file_source import FileSource
from custos.data.fingerprint import PREFIX, row_lineage
from custos.data.query import connect
from custos.data.synthetic import synthetic_patients


def mixed_table() -> pa.Table:
    """Every kind a dataset may hold, with nulls, empty strings and integral floats."""
    return pa.table(
        {
            "code": ["a", "", None, "d", "e", "f"],
            "n": pa.array([1, 2, None, 4, 5, 6], type=pa.int32()),
            "x": pa.array([0.1, 25.0, None, -3.75, 1e-7, 2.0]),
            "w": pa.array([0.1, 2.5, 3.0, None, 7.0, 1.25], type=pa.float32()),
            "flag": [True, False, None, True, False, True],
            "day": pa.array([date(2024, 1, d) for d in range(1, 7)]),
            "at": pa.array([datetime(2024, 1, d, 12, 30, d) for d in range(1, 7)], type=pa.timestamp("ns")),
        }
    )


def parquet(tmp_path: Path, table: pa.Table, name: str = "t") -> FileSource:
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path)
    return FileSource(name, path, "parquet")


def csv(tmp_path: Path, table: pa.Table, name: str = "t") -> FileSource:
    path = tmp_path / f"{name}.csv"
    pa_csv.write_csv(table, path)
    return FileSource(name, path, "csv")


def shuffled(table: pa.Table, seed: int = 1) -> pa.Table:
    return table.take(np.random.default_rng(seed).permutation(table.num_rows))


def reordered_and_renamed(table: pa.Table) -> pa.Table:
    names = list(reversed(table.column_names))
    return table.select(names).rename_columns([f"{n}_renamed" for n in names])


class TableSource:
    """A DataSource over an in-memory table: the fingerprint of any other kind of source."""

    name = "memory"

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def arrow_schema(self) -> pa.Schema:
        return self.table.schema

    def read(self, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.RecordBatchReader:
        assert not filters
        return self.table.select(list(columns)).to_reader()


def test_a_fingerprint_names_its_version(tmp_path: Path) -> None:
    lineage = row_lineage(parquet(tmp_path, mixed_table()))
    assert lineage.startswith(PREFIX) and len(lineage) == len(PREFIX) + 64


def test_the_same_rows_in_csv_or_parquet_any_order_any_names_share_a_fingerprint(tmp_path: Path) -> None:
    table = synthetic_patients(3_000, site=1, seed=4)
    original = row_lineage(parquet(tmp_path, table, "original"))

    copies = {
        "csv": csv(tmp_path, table, "copy"),
        "shuffled csv": csv(tmp_path, shuffled(table), "shuffled"),
        "renamed parquet": parquet(tmp_path, reordered_and_renamed(shuffled(table, 2)), "renamed"),
        "renamed csv": csv(tmp_path, reordered_and_renamed(table), "renamed"),
        "pandas csv": FileSource("pandas", tmp_path / "pandas.csv", "csv"),
    }
    table.to_pandas().to_csv(tmp_path / "pandas.csv", index=False)
    for what, source in copies.items():
        assert row_lineage(source) == original, what
    assert row_lineage(TableSource(shuffled(table, 3))) == original


def test_every_kind_agrees_between_parquet_and_its_csv_text(tmp_path: Path) -> None:
    table = mixed_table()
    from_csv = csv(tmp_path, table)
    # The CSV reads back with other types: int32 as BIGINT, float32 as its decimal text, booleans as
    # text, the empty string as null, nanoseconds as a TIMESTAMP.
    assert from_csv.arrow_schema().field("flag").type == pa.string()
    assert row_lineage(from_csv) == row_lineage(parquet(tmp_path, table))


def test_an_integral_float_column_read_as_integers_keeps_its_fingerprint(tmp_path: Path) -> None:
    floats = pa.table({"dose": pa.array([1.0, 2.0, 40.0, -3.0])})
    from_csv = csv(tmp_path, floats)
    assert pa.types.is_integer(from_csv.arrow_schema().field("dose").type)
    assert row_lineage(from_csv) == row_lineage(parquet(tmp_path, floats))


@pytest.mark.parametrize(
    "change",
    ["a value", "a row removed", "a row repeated", "a column dropped", "values moved between rows"],
)
def test_other_rows_have_another_fingerprint(tmp_path: Path, change: str) -> None:
    table = synthetic_patients(500, site=0, seed=9).drop_columns(["patient_id"])
    if change == "a value":
        bmi = table.column("bmi").to_pylist()
        bmi[17] += 0.5
        other = table.set_column(table.schema.get_field_index("bmi"), "bmi", pa.array(bmi))
    elif change == "a row removed":
        other = table.slice(1)
    elif change == "a row repeated":
        other = pa.concat_tables([table, table.slice(0, 1)])
    elif change == "a column dropped":
        other = table.drop_columns(["postcode"])
    else:
        ages = table.column("age").to_pylist()
        ages[0], ages[1] = ages[1], ages[0]
        other = table.set_column(table.schema.get_field_index("age"), "age", pa.array(ages))
        assert ages[0] != ages[1]
    assert row_lineage(parquet(tmp_path, other, "other")) != row_lineage(parquet(tmp_path, table))


def test_an_empty_table_and_a_table_of_nulls_have_fingerprints(tmp_path: Path) -> None:
    empty = pa.table({"x": pa.array([], type=pa.float64())})
    nulls = pa.table({"x": pa.array([None, None], type=pa.float64())})
    assert row_lineage(parquet(tmp_path, empty, "empty")) != row_lineage(parquet(tmp_path, nulls, "nulls"))


def test_a_file_source_gives_its_relation_for_whole_table_aggregates(tmp_path: Path) -> None:
    source = parquet(tmp_path, mixed_table())
    relation, params = source.relation()
    con = connect()
    try:
        assert con.sql(f"SELECT count(*) FROM {relation}", params=params).fetchall() == [(6,)]  # noqa: S608
    finally:
        con.close()
