"""Synthetic patients: the promised columns and ranges, reproducible, different from site to site."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from custos.core.errors import InvalidInput
from custos.data.synthetic import synthetic_patients, write_dataset


def test_columns_types_and_ranges() -> None:
    table = synthetic_patients(20_000, site=0)
    assert table.num_rows == 20_000
    assert table.schema.names == [
        "patient_id", "age", "sex", "bmi", "systolic_bp", "smoker", "region", "diagnosis", "postcode",
    ]  # fmt: skip
    assert table.schema.field("age").type == pa.int64()
    assert table.schema.field("bmi").type == pa.float64()
    assert table.schema.field("systolic_bp").type == pa.float64()
    ids = table.column("patient_id").to_pylist()
    assert ids[:2] == ["a-000000", "a-000001"]
    assert len(set(ids)) == len(ids)
    ages = table.column("age").to_numpy()
    assert ages.min() >= 18
    assert ages.max() <= 95
    assert set(table.column("sex").to_pylist()) == {"F", "M"}
    assert set(table.column("smoker").to_pylist()) == {"yes", "no"}
    assert len(set(table.column("region").to_pylist())) == 5
    diagnoses = table.column("diagnosis").to_pylist()
    assert len(set(diagnoses)) == 6
    assert 0 < diagnoses.count("rare-disorder") < 0.02 * len(diagnoses)
    assert len(set(table.column("postcode").to_pylist())) > 0.9 * len(ids)
    assert all(column.null_count == 0 for column in table.columns)


def test_the_same_arguments_give_the_same_table() -> None:
    assert synthetic_patients(1_000, site=1, seed=5).equals(synthetic_patients(1_000, site=1, seed=5))
    assert not synthetic_patients(1_000, site=1, seed=5).equals(synthetic_patients(1_000, site=1, seed=6))


def test_sites_differ_in_distribution_and_ids() -> None:
    first, second = synthetic_patients(20_000, site=0), synthetic_patients(20_000, site=2)
    assert second.column("patient_id")[0].as_py() == "c-000000"
    assert np.mean(second.column("age").to_numpy()) - np.mean(first.column("age").to_numpy()) > 5
    smokers = [t.column("smoker").to_pylist().count("yes") / t.num_rows for t in (first, second)]
    assert smokers[1] - smokers[0] > 0.05


def test_blood_pressure_rises_with_age() -> None:
    table = synthetic_patients(20_000, site=0)
    corr = np.corrcoef(table.column("age").to_numpy(), table.column("systolic_bp").to_numpy())[0, 1]
    assert corr > 0.3


def test_write_dataset_by_suffix(tmp_path: Path) -> None:
    table = synthetic_patients(100, site=0)
    write_dataset(table, tmp_path / "deep" / "p.parquet")
    assert pq.read_table(tmp_path / "deep" / "p.parquet").equals(table)
    write_dataset(table, tmp_path / "p.csv")
    assert pa_csv.read_csv(tmp_path / "p.csv").column("patient_id").equals(table.column("patient_id"))
    with pytest.raises(InvalidInput, match=r"p\.xlsx has an unsupported type"):
        write_dataset(table, tmp_path / "p.xlsx")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidInput, match="rows must be 0 or more"):
        synthetic_patients(-1, site=0)
    with pytest.raises(InvalidInput, match="site must be 0 or more"):
        synthetic_patients(10, site=-1)
    assert synthetic_patients(0, site=0).num_rows == 0
