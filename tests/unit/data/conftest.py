"""Fixtures for the data tests: a small table holding every filterable type and some nulls, on disk."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from custos.data.file_source import FileSource
from custos.data.synthetic import write_dataset


def sample_table() -> pa.Table:
    return pa.table(
        {
            "id": [f"r{i:02d}" for i in range(12)],
            "age": pa.array([30, 40, 50, None, 40, 60, 70, 30, 20, 40, 55, 65], type=pa.int64()),
            "score": pa.array([1.5, 2.5, None, 3.25, 0.5, 2.5, 9.0, 1.0, 4.5, 2.0, 3.0, 7.75]),
            "group": ["a", "b", "a", None, "c", "b", "a", "c", None, "b", "a", "c"],
            "day": pa.array([date(2024, 1, d) for d in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)]),
        }
    )


@pytest.fixture
def sample() -> pa.Table:
    return sample_table()


@pytest.fixture(params=["parquet", "csv"])
def sample_source(request: pytest.FixtureRequest, tmp_path: Path) -> FileSource:
    path = tmp_path / f"sample.{request.param}"
    write_dataset(sample_table(), path)
    return FileSource("sample", path, request.param)
