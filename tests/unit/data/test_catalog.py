"""DATASETS.yaml: a good catalogue loads with absolute paths; every mistake is one clear InvalidInput."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.core.errors import InvalidInput
from custos.core.schema import ColumnSchema, DatasetSchema
from custos.data.catalog import ColumnNote, DatasetEntry, describe_schema, load_catalog


def _write(folder: Path, text: str) -> Path:
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "patients.parquet").write_bytes(b"PAR1")
    (folder / "data" / "visits.csv").write_text("a,b\n1,2\n")
    path = folder / "DATASETS.yaml"
    path.write_text(text)
    return path


def test_a_catalogue_loads_with_absolute_paths_and_default_policy(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "datasets:\n"
        "  - name: patients\n"
        "    path: data/patients.parquet\n"
        "    description: Synthetic patient cohort\n"
        "    policy: policies/p.yaml\n"
        "  - name: visits\n"
        "    path: data/visits.csv\n",
    )
    patients, visits = load_catalog(path)
    assert patients.name == "patients"
    assert patients.path == (tmp_path / "data" / "patients.parquet").resolve()
    assert patients.path.is_absolute()
    assert patients.format == "parquet"
    assert patients.description == "Synthetic patient cohort"
    assert patients.policy_path == (tmp_path / "policies" / "p.yaml").resolve()
    assert visits.format == "csv"
    assert visits.description == ""
    assert visits.policy_path == (tmp_path / "visits.policy.json").resolve()


def test_an_empty_list_means_no_datasets(tmp_path: Path) -> None:
    assert load_catalog(_write(tmp_path, "datasets: []\n")) == []


def test_a_missing_policy_file_is_not_an_error(tmp_path: Path) -> None:
    (entry,) = load_catalog(_write(tmp_path, "datasets:\n  - {name: visits, path: data/visits.csv}\n"))
    assert not entry.policy_path.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("datasets:\n  - name: visits\n    path: a: b\n", "malformed YAML at line 3, column 12"),
        ("datasets: []\nextra: 1\n", "unknown key 'extra'"),
        ("datasets:\n  - {name: visits, path: data/visits.csv, pth: x}\n", "unknown key 'pth'"),
        ("datasets:\n  - {name: Visits!, path: data/visits.csv}\n", "dataset 'Visits!' is not a valid name"),
        ("datasets:\n  - {path: data/visits.csv}\n", "name is missing"),
        ("datasets:\n  - {name: visits}\n", "dataset visits: path is missing"),
        ("datasets:\n" + "  - {name: visits, path: data/visits.csv}\n" * 2, "name 'visits' appears twice"),
        ("datasets:\n  - {name: visits, path: data/x.csv}\n", "dataset visits: file data/x.csv not found"),
        ("datasets:\n  - {name: visits, path: data/visits.xlsx}\n", "use a .csv or .parquet file"),
        ("datasets: {name: visits}\n", "datasets must be a list"),
        ("- just a list\n", "must be a mapping with the key 'datasets'"),
        ("datasets:\n  - visits\n", "datasets[0]: expected a mapping"),
        ("datasets:\n  - {name: visits, path: 42}\n", "path must be a non-empty string"),
        ("datasets:\n  - !!python/object:os.system {name: visits}\n", "malformed YAML"),
    ],
)
def test_each_mistake_is_one_clear_invalid_input(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_catalog(_write(tmp_path, text))
    assert expected in caught.value.message
    assert "\n" not in caught.value.message
    assert str(tmp_path) not in caught.value.message


def test_a_missing_catalogue_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"DATASETS\.yaml not found"):
        load_catalog(tmp_path / "DATASETS.yaml")


def test_licence_and_column_notes_load(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "datasets:\n"
        "  - name: visits\n"
        "    path: data/visits.csv\n"
        "    licence: CC BY 4.0, research use only\n"
        "    columns:\n"
        "      a: {description: Age at the visit, unit: years}\n"
        "      b: {unit: kg}\n",
    )
    (entry,) = load_catalog(path)
    assert entry.licence == "CC BY 4.0, research use only"
    assert entry.columns == {
        "a": ColumnNote(description="Age at the visit", unit="years"),
        "b": ColumnNote(description="", unit="kg"),
    }


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (
            "      a: {descripton: x}\n",
            "columns.a: unknown key 'descripton'; accepted keys: description, unit",
        ),
        ("      a: years\n", "columns.a: expected a mapping with keys description, unit"),
        ("      a: {unit: 5}\n", "columns.a: unit must be a non-empty string"),
        ("      a: {unit: " + "m" * 41 + "}\n", "columns.a: unit has 41 characters; at most 40"),
        ("      - a\n", "columns must be a mapping of column name"),
    ],
)
def test_each_column_note_mistake_is_refused(tmp_path: Path, columns: str, expected: str) -> None:
    text = "datasets:\n  - name: visits\n    path: data/visits.csv\n    columns:\n" + columns
    with pytest.raises(InvalidInput) as caught:
        load_catalog(_write(tmp_path, text))
    assert expected in caught.value.message


def test_describe_schema_adds_the_notes_and_licence_to_the_profiled_schema(tmp_path: Path) -> None:
    entry = DatasetEntry(
        "visits",
        tmp_path / "v.csv",
        "csv",
        "",
        tmp_path / "p.json",
        licence="research only",
        columns={"a": ColumnNote("Age", "years")},
    )
    schema = DatasetSchema(
        columns=[
            ColumnSchema(name="a", type="integer", kind="numeric"),
            ColumnSchema(name="b", type="string", kind="categorical"),
        ]
    )
    described = describe_schema(entry, schema)
    assert described.licence == "research only"
    assert (described.column("a").description, described.column("a").unit) == ("Age", "years")
    assert (described.column("b").description, described.column("b").unit) == ("", "")
    assert described.names == ["a", "b"]


def test_a_note_on_a_column_the_file_lacks_is_refused(tmp_path: Path) -> None:
    entry = DatasetEntry(
        "visits", tmp_path / "v.csv", "csv", "", tmp_path / "p.json", columns={"agee": ColumnNote("Age")}
    )
    schema = DatasetSchema(columns=[ColumnSchema(name="age", type="integer", kind="numeric")])
    with pytest.raises(InvalidInput) as caught:
        describe_schema(entry, schema)
    assert caught.value.message == (
        "dataset visits: DATASETS.yaml describes column 'agee', which the file does not have; "
        "its columns: age"
    )


def test_a_schema_without_catalogue_fields_still_validates() -> None:
    # What a gateway that predates the catalogue publishes.
    old = {"columns": [{"name": "age", "type": "integer", "kind": "numeric", "min": 18, "max": 95}]}
    schema = DatasetSchema.model_validate(old)
    assert schema.licence == ""
    assert schema.column("age").unit == ""
