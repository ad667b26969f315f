"""One contract for every reader of rows: the CSV and Parquet file sources and the in-memory TableDalReader.

Each reads exactly the named columns and applies every filter op with the same meaning, checked against
pandas; none lets a column name or a filter value become SQL (docs/threats.md, A6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from custos.core.dal_wire import Filter
from custos.core.errors import InvalidInput, PermissionDenied
from custos.data.file_source import FileSource
from custos.data.synthetic import write_dataset
from custos.data.table_reader import TableDalReader

from .conftest import sample_table

Read = Callable[[Sequence[str], Sequence[Filter]], pa.Table]


@pytest.fixture(params=["parquet", "csv", "table"])
def reader_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def read(reader_kind: str, tmp_path: Path) -> Read:
    if reader_kind == "table":
        reader = TableDalReader({"sample": sample_table()})
        return lambda columns, filters: reader.read("sample", columns, filters)
    path = tmp_path / f"sample.{reader_kind}"
    write_dataset(sample_table(), path)
    source = FileSource("sample", path, reader_kind, batch_rows=4)  # type: ignore[arg-type]
    return lambda columns, filters: source.read(columns, filters).read_all()


@pytest.fixture
def unknown_column_error(reader_kind: str) -> type[Exception]:
    """A source refuses a column it lacks; a reader holding grants, like the DAL, refuses it as ungranted."""
    return PermissionDenied if reader_kind == "table" else InvalidInput


def _expected(frame: pd.DataFrame, column: str, op: str, value: Any) -> pd.DataFrame:
    series = frame[column]
    present = series.notna()
    if column == "day" and isinstance(value, str):
        value = pd.Timestamp(value).date()
    masks: dict[str, Callable[[], pd.Series]] = {
        "==": lambda: present & (series == value),
        "!=": lambda: present & (series != value),
        "<": lambda: present & (series < value),
        "<=": lambda: present & (series <= value),
        ">": lambda: present & (series > value),
        ">=": lambda: present & (series >= value),
        "in": lambda: present & series.isin(value),
        "not_in": lambda: present & ~series.isin(value),
        "is_null": lambda: ~present,
        "not_null": lambda: present,
    }
    return frame[masks[op]()]


FILTERS = [
    ("age", "==", 40),
    ("age", "!=", 40),
    ("age", "<", 40),
    ("age", "<=", 40),
    ("age", ">", 40),
    ("age", ">=", 40),
    ("age", "in", [30, 55, 99]),
    ("age", "not_in", [30, 40]),
    ("age", "is_null", None),
    ("age", "not_null", None),
    ("score", "<", 2.5),
    ("score", ">=", 2),
    ("group", "==", "a"),
    ("group", "!=", "a"),
    ("group", "in", ["a", "c"]),
    ("group", "not_in", ["a"]),
    ("group", "is_null", None),
    ("group", "not_null", None),
    ("day", ">=", "2024-01-06"),
    ("day", "==", "2024-01-03"),
]


@pytest.mark.parametrize(("column", "op", "value"), FILTERS)
def test_each_filter_op_matches_pandas(read: Read, column: str, op: str, value: Any) -> None:
    frame = sample_table().to_pandas()
    expected = _expected(frame, column, op, value)[["id", "score"]].reset_index(drop=True)
    result = read(["id", "score"], [Filter.model_validate({"column": column, "op": op, "value": value})])
    assert result.column_names == ["id", "score"]
    got = result.to_pandas().sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_filters_combine_with_and(read: Read) -> None:
    result = read(
        ["id"], [Filter(column="group", op="==", value="a"), Filter(column="age", op=">", value=40)]
    )
    assert sorted(result.column("id").to_pylist()) == ["r02", "r06", "r10"]


def test_projection_returns_only_the_named_columns_in_order(read: Read) -> None:
    result = read(["group", "age"], [])
    assert result.column_names == ["group", "age"]
    assert result.num_rows == 12


@pytest.mark.parametrize(
    ("columns", "filters"), [(["nope"], []), (["id"], [Filter(column="nope", op="==", value=1)])]
)
def test_a_column_the_data_lacks_is_refused(
    read: Read, unknown_column_error: type[Exception], columns: list[str], filters: list[Filter]
) -> None:
    with pytest.raises(unknown_column_error, match="nope"):
        read(columns, filters)


@pytest.mark.parametrize(
    ("columns", "filters", "message"),
    [
        (["id", "id"], [], "named twice"),
        ([], [], "name at least one column"),
        (["id"], [Filter(column="age", op="==", value="40")], "is not a number"),
        (["id"], [Filter(column="age", op="==", value=True)], "is not a number"),
        (["id"], [Filter(column="group", op="==", value=1)], "is not a string"),
        (["id"], [Filter(column="day", op="<", value="yesterday")], "ISO date"),
        (["id"], [Filter(column="age", op="in", value=[])], "needs a list of 1 to"),
        (["id"], [Filter(column="age", op="in", value=3)], "needs a list"),
        (["id"], [Filter(column="age", op="<", value=[3])], "needs one value"),
        (["id"], [Filter(column="age", op="<", value=None)], "needs one value"),
        (["id"], [Filter(column="age", op="is_null", value=3)], "takes no value"),
        (["id"], [Filter(column="score", op="==", value=float("nan"))], "use is_null"),
    ],
)
def test_bad_requests_are_refused_with_invalid_input(
    read: Read, columns: list[str], filters: list[Filter], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        read(columns, filters)


INJECTED_NAMES = [
    "id\" FROM read_csv('/etc/passwd') --",
    "id; DROP TABLE src",
    '"id"',
    "ID",
]


@pytest.mark.parametrize("name", INJECTED_NAMES)
def test_a6_sql_in_a_column_name_is_refused(
    read: Read, unknown_column_error: type[Exception], name: str
) -> None:
    with pytest.raises(unknown_column_error):
        read([name], [])
    with pytest.raises(unknown_column_error):
        read(["id"], [Filter(column=name, op="is_null")])


@pytest.mark.parametrize(
    "value", ["a' OR '1'='1", 'a" OR 1=1 --', "a'); DROP TABLE src; --", "?", "$1", "' UNION SELECT 1 --"]
)
def test_a6_sql_in_a_filter_value_is_only_data(read: Read, value: str) -> None:
    assert read(["id"], [Filter(column="group", op="==", value=value)]).num_rows == 0
    assert read(["id"], [Filter(column="group", op="in", value=[value, "b"])]).num_rows == 3


def test_a6_a_real_column_with_quotes_in_its_name_is_read_as_a_name(tmp_path: Path) -> None:
    odd = 'we"ird; col'
    table = pa.table({odd: [1, 2, 3], "x": ["a", "b", "c"]})
    pq.write_table(table, tmp_path / "odd.parquet")
    source = FileSource("odd", tmp_path / "odd.parquet", "parquet")
    result = source.read([odd, "x"], [Filter(column=odd, op=">=", value=2)]).read_all()
    assert result.column_names == [odd, "x"]
    assert result.column("x").to_pylist() == ["b", "c"]
    reader = TableDalReader({"odd": table})
    assert reader.read("odd", [odd], [Filter(column=odd, op="<", value=2)]).column(0).to_pylist() == [1]
