"""FileSource specifics: streaming in batches, reads from many threads, CSV typing, and what stays hidden."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

from custos.core.dal_wire import Filter
from custos.core.errors import InvalidInput
from custos.data.catalog import DatasetEntry
from custos.data.file_source import FileSource, open_source
from custos.data.synthetic import synthetic_patients, write_dataset


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_reads_stream_in_batches(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"p.{fmt}"
    write_dataset(synthetic_patients(1000, site=0), path)
    source = FileSource("p", path, fmt, batch_rows=100)  # type: ignore[arg-type]
    reader = source.read(["age", "bmi"])
    assert isinstance(reader, pa.RecordBatchReader)
    sizes = [batch.num_rows for batch in reader]
    assert len(sizes) >= 5
    assert sum(sizes) == 1000


def test_schema_matches_what_read_returns(sample_source: FileSource) -> None:
    schema = sample_source.arrow_schema()
    assert schema.names == ["id", "age", "score", "group", "day"]
    table = sample_source.read(schema.names).read_all()
    assert table.schema.equals(schema)
    assert pa.types.is_integer(schema.field("age").type)
    assert pa.types.is_date(schema.field("day").type)


def test_csv_letters_and_yes_no_stay_strings(tmp_path: Path) -> None:
    path = tmp_path / "letters.csv"
    path.write_text("sex,smoker,n\nF,yes,1\nF,no,2\n")
    source = FileSource("letters", path, "csv")
    schema = source.arrow_schema()
    assert pa.types.is_string(schema.field("sex").type)
    assert pa.types.is_string(schema.field("smoker").type)
    got = source.read(["n"], [Filter(column="smoker", op="==", value="yes")]).read_all()
    assert got.column("n").to_pylist() == [1]


def test_many_threads_read_at_once(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    write_dataset(synthetic_patients(20_000, site=1), path)
    source = FileSource("p", path, "parquet")
    counts: list[int] = []
    errors: list[BaseException] = []

    def work(limit: int) -> None:
        try:
            table = source.read(["age"], [Filter(column="age", op="<", value=limit)]).read_all()
            counts.append(table.num_rows if max(table.column("age").to_pylist(), default=0) < limit else -1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(30 + 5 * i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(counts) == 8
    assert all(c > 0 for c in counts)


def test_an_unreadable_file_is_invalid_input_without_its_location(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet at all")
    source = FileSource("broken", path, "parquet")
    with pytest.raises(InvalidInput, match="dataset broken: the file could not be read as parquet") as caught:
        source.arrow_schema()
    assert str(tmp_path) not in caught.value.message
    assert str(tmp_path) not in repr(source)


def test_open_source_reads_a_catalogue_entry(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    write_dataset(synthetic_patients(50, site=2), path)
    entry = DatasetEntry("patients", path, "csv", "", tmp_path / "patients.policy.yaml")
    source = open_source(entry)
    assert source.name == "patients"
    assert source.read(["patient_id"]).read_all().column(0)[0].as_py() == "c-000000"


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_closed_source_serves_and_filters_rare_categories_as_other(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"d.{fmt}"
    table = pa.table(
        {
            "diagnosis": ["asthma", "rare", None, "copd", "lupus", "asthma"],
            "age": [30, 41, 52, 63, 74, 85],
        }
    )
    write_dataset(table, path)
    raw = FileSource("d", path, fmt)  # type: ignore[arg-type]
    closed = raw.closed({"diagnosis": ["asthma", "copd"]})

    assert closed.arrow_schema().equals(raw.arrow_schema())
    served = closed.read(["age", "diagnosis"]).read_all()
    assert served.column("diagnosis").to_pylist() == ["asthma", "(other)", None, "copd", "(other)", "asthma"]
    assert served.column("age").to_pylist() == table.column("age").to_pylist()

    def ages(*filters: Filter) -> list[int]:
        return sorted(closed.read(["age"], filters).read_all().column("age").to_pylist())

    # A filter naming a rare value finds nothing; one on (other) finds the rare rows.
    assert ages(Filter(column="diagnosis", op="==", value="rare")) == []
    assert ages(Filter(column="diagnosis", op="in", value=["lupus", "copd"])) == [63]
    assert ages(Filter(column="diagnosis", op="==", value="(other)")) == [41, 74]
    assert ages(Filter(column="diagnosis", op="is_null"), Filter(column="age", op=">", value=40)) == [52]
    assert ages(Filter(column="diagnosis", op="!=", value="asthma")) == [41, 63, 74]
    # The raw source is unchanged: the gateway profiles, mocks and fingerprints the rows as stored.
    assert (
        raw.read(["diagnosis"]).read_all().column("diagnosis").to_pylist()
        == table.column("diagnosis").to_pylist()
    )


def test_only_string_columns_of_the_data_can_be_closed(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    write_dataset(pa.table({"code": ["a", "b"], "n": [1, 2]}), path)
    source = FileSource("d", path, "parquet")
    for column in ("n", "missing"):
        with pytest.raises(InvalidInput, match=f"column {column!r} is not a string column to close"):
            source.closed({column: ["1"]})
    every = source.closed({"code": []})
    assert every.read(["code"]).read_all().column("code").to_pylist() == ["(other)", "(other)"]
