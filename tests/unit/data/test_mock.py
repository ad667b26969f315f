"""Mock tables: the real schema and types, values from the public schema only, and never a real row."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from custos.core.errors import InvalidInput
from custos.core.schema import ColumnSchema, DatasetSchema
from custos.data.file_source import FileSource
from custos.data.mock import generate_mock
from custos.data.profile import profile
from custos.data.synthetic import synthetic_patients, write_dataset


def _source(tmp_path: Path, table: pa.Table, fmt: str = "parquet") -> FileSource:
    path = tmp_path / f"real.{fmt}"
    write_dataset(table, path)
    return FileSource("real", path, fmt)  # type: ignore[arg-type]


def _shared_rows(mock: pa.Table, real: pa.Table) -> int:
    joined = mock.to_pandas().merge(real.select(mock.column_names).to_pandas(), how="inner")
    return len(joined)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_mock_of_synthetic_patients_is_plausible_and_holds_no_real_row(tmp_path: Path, fmt: str) -> None:
    real = synthetic_patients(5_000, site=1)
    source = _source(tmp_path, real, fmt)
    schema, _ = profile(source)
    mock = generate_mock(source, schema, rows=300, seed=7)
    assert mock.num_rows == 300
    assert mock.schema.equals(source.arrow_schema())
    for column in schema.columns:
        values = mock.column(column.name)
        if column.kind == "numeric":
            assert column.min is not None and column.max is not None
            assert column.min <= pc.min(values).as_py() and pc.max(values).as_py() <= column.max
        elif column.kind == "categorical":
            assert set(values.to_pylist()) <= set(column.categories or [])
        else:
            assert all(v.startswith("mock-") for v in values.to_pylist())
    assert pa.types.is_integer(mock.schema.field("age").type)
    assert _shared_rows(mock, source.read(source.arrow_schema().names).read_all()) == 0


def test_the_same_seed_gives_the_same_mock(tmp_path: Path) -> None:
    source = _source(tmp_path, synthetic_patients(500, site=0))
    schema, _ = profile(source)
    assert generate_mock(source, schema, seed=3).equals(generate_mock(source, schema, seed=3))
    assert not generate_mock(source, schema, seed=3).equals(generate_mock(source, schema, seed=4))


def _two_categories(tmp_path: Path, rows: list[tuple[str, str]]) -> tuple[FileSource, DatasetSchema]:
    real = pa.table({"a": [r[0] for r in rows], "b": [r[1] for r in rows]})
    source = _source(tmp_path, real)
    schema = DatasetSchema(
        columns=[
            ColumnSchema(name="a", type="string", kind="categorical", categories=["x", "y"]),
            ColumnSchema(name="b", type="string", kind="categorical", categories=["p", "q"]),
        ]
    )
    return source, schema


def test_clashing_rows_are_drawn_again_until_none_is_real(tmp_path: Path) -> None:
    # Three of the four possible rows are real: three draws in four clash and must be redrawn.
    source, schema = _two_categories(tmp_path, [("x", "p"), ("x", "q"), ("y", "p")] * 10)
    mock = generate_mock(source, schema, rows=200, seed=1)
    assert mock.num_rows == 200
    assert set(zip(mock.column("a").to_pylist(), mock.column("b").to_pylist(), strict=True)) == {("y", "q")}


def test_a_schema_whose_every_row_is_real_cannot_be_mocked(tmp_path: Path) -> None:
    source, schema = _two_categories(tmp_path, [("x", "p"), ("x", "q"), ("y", "p"), ("y", "q")])
    with pytest.raises(InvalidInput, match=r"dataset real: .*differ from every real row"):
        generate_mock(source, schema, rows=20, seed=1)


def test_nulls_count_as_values_when_comparing_rows(tmp_path: Path) -> None:
    real = pa.table({"a": pa.array([None, "x"], type=pa.string())})
    source = _source(tmp_path, real)
    schema = DatasetSchema(
        columns=[
            ColumnSchema(name="a", type="string", kind="categorical", nullable=True, categories=["x", "y"])
        ]
    )
    mock = generate_mock(source, schema, rows=400, seed=2)
    assert mock.column("a").to_pylist() == ["y"] * 400


def test_nullable_columns_get_some_nulls_and_unsigned_bounds_stay_in_range(tmp_path: Path) -> None:
    real = pa.table(
        {
            "n": pa.array([0, 255, 7, None] * 5, type=pa.uint8()),
            "f": pa.array([0.5, None, 2.5, 1.0] * 5, type=pa.float32()),
        }
    )
    source = _source(tmp_path, real)
    schema, _ = profile(source)
    mock = generate_mock(source, schema, rows=400, seed=5)
    assert mock.schema.equals(source.arrow_schema())
    assert 0 < mock.column("n").null_count < 400
    assert 0 < mock.column("f").null_count < 400
    assert _shared_rows(mock.drop_null(), real.drop_null()) == 0


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    source = _source(tmp_path, synthetic_patients(20, site=0))
    schema, _ = profile(source)
    with pytest.raises(InvalidInput, match="rows must be 0 or more"):
        generate_mock(source, schema, rows=-1)
    other = DatasetSchema(columns=[ColumnSchema(name="weight", type="float", kind="numeric", min=1, max=2)])
    with pytest.raises(InvalidInput, match="the schema names column\\(s\\) the data lacks"):
        generate_mock(source, other)
    assert generate_mock(source, schema, rows=0).num_rows == 0


def test_booleans_dates_timestamps_and_small_floats(tmp_path: Path) -> None:
    real = pa.table(
        {
            "flag": [True, False, True, False],
            "day": pa.array([date(2024, 1, d) for d in (1, 2, 3, 4)]),
            "at": pa.array([datetime(2024, 1, d, 8, 30) for d in (1, 2, 3, 4)], type=pa.timestamp("us")),
            "tiny": [0.00012, 0.00034, 0.00056, 0.00078],
        }
    )
    source = _source(tmp_path, real)
    schema, _ = profile(source)
    mock = generate_mock(source, schema, rows=100, seed=9)
    assert mock.schema.equals(source.arrow_schema())
    assert set(mock.column("flag").to_pylist()) == {True, False}
    assert len(set(mock.column("day").to_pylist())) > 50
    tiny, bounds = mock.column("tiny").to_pylist(), schema.columns[3]
    assert len(set(tiny)) > 50
    assert bounds.min is not None and bounds.max is not None
    assert all(bounds.min <= v <= bounds.max for v in tiny)
