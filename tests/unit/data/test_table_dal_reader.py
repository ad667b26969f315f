"""TableDalReader, the in-memory DalReader: it refuses what the DAL refuses and returns tables."""

from __future__ import annotations

import pyarrow as pa
import pytest

from custos.computations.base import DalReader
from custos.core.dal_wire import Filter
from custos.core.errors import PermissionDenied
from custos.data.table_reader import TableDalReader

from .conftest import sample_table


def test_it_is_a_dal_reader() -> None:
    reader: DalReader = TableDalReader({"sample": sample_table()})
    table = reader.read("sample", ["id"], [Filter(column="group", op="==", value="b")])
    assert isinstance(table, pa.Table)
    assert sorted(table.column("id").to_pylist()) == ["r01", "r05", "r09"]


def test_a_dataset_it_does_not_hold_is_not_granted() -> None:
    reader = TableDalReader({"sample": sample_table()})
    with pytest.raises(PermissionDenied, match="dataset other is not granted to this task; granted: sample"):
        reader.read("other", ["id"])


def test_grants_limit_columns_read_and_filtered() -> None:
    reader = TableDalReader({"sample": sample_table()}, granted={"sample": ["id", "age"]})
    assert reader.read("sample", ["id", "age"]).num_rows == 12
    with pytest.raises(PermissionDenied, match="column\\(s\\) score of dataset sample are not granted"):
        reader.read("sample", ["id", "score"])
    with pytest.raises(PermissionDenied, match="group"):
        reader.read("sample", ["id"], [Filter(column="group", op="is_null")])
