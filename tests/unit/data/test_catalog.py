"""DATASETS.yaml: a good catalogue loads with absolute paths; every mistake is one clear InvalidInput."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.core.errors import InvalidInput
from custos.data.catalog import load_catalog


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
    assert visits.policy_path == (tmp_path / "visits.policy.yaml").resolve()


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
