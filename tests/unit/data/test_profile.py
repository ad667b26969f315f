"""Profiling publishes a schema and a count that hold no raw data value."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from custos.core.errors import InvalidInput
from custos.data.file_source import FileSource
from custos.data.profile import outward_bounds, profile, round_count
from custos.data.synthetic import synthetic_patients, write_dataset


def _source(tmp_path: Path, table: pa.Table, fmt: str = "parquet") -> FileSource:
    path = tmp_path / f"t.{fmt}"
    write_dataset(table, path)
    return FileSource("t", path, fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("count", "rounded"), [(0, 0), (4, 0), (5, 10), (23, 20), (25, 30), (1234, 1230), (99_995, 100_000)]
)
def test_counts_round_to_the_nearest_ten(count: int, rounded: int) -> None:
    assert round_count(count) == rounded


@pytest.mark.parametrize(
    ("low", "high", "bounds"),
    [
        (18, 95, (17, 96)),
        (18.3, 94.2, (18, 95)),
        (0.123, 98.76, (0.12, 99)),
        (-3.47, -0.5, (-3.5, -0.49)),
        (-3.4, 12.0, (-3.5, 13)),
        (0, 95, (-1, 96)),
        (0, 0.93, (-0.01, 0.94)),
        (0, 0, (-1, 1)),
        (1234.5, 98_765.4, (1200, 99_000)),
        (99.5, 99.5, (99, 100)),
    ],
)
def test_bounds_round_outward_to_two_figures_never_onto_a_value(
    low: float, high: float, bounds: tuple[float, float]
) -> None:
    got = outward_bounds(low, high)
    assert got == pytest.approx(bounds)
    assert got[0] < low
    assert got[1] > high


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_synthetic_patients_profile(tmp_path: Path, fmt: str) -> None:
    table = synthetic_patients(2_345, site=0)
    schema, rows = profile(_source(tmp_path, table, fmt))
    assert rows == 2_350
    assert schema.names == table.column_names
    by_name = {c.name: c for c in schema.columns}
    age = by_name["age"]
    assert (age.type, age.kind) == ("integer", "numeric")
    ages = table.column("age").to_pylist()
    assert age.min is not None and age.max is not None
    assert age.min < min(ages) and age.max > max(ages)
    bmi = by_name["bmi"]
    assert (bmi.type, bmi.kind) == ("float", "numeric")
    for name in ("age", "bmi", "systolic_bp"):
        column, values = by_name[name], table.column(name).to_pylist()
        assert column.min is not None and column.max is not None
        assert column.min < min(values) and column.max > max(values)
    assert by_name["sex"].categories == ["F", "M"]
    assert by_name["smoker"].categories == ["no", "yes"]
    assert by_name["region"].kind == "categorical"
    assert by_name["region"].categories == sorted(set(table.column("region").to_pylist()))
    diagnoses = Counter(table.column("diagnosis").to_pylist())
    kept = sorted(d for d, n in diagnoses.items() if n >= 10)
    assert by_name["diagnosis"].categories == kept + (["(other)"] if len(kept) < len(diagnoses) else [])
    for name in ("patient_id", "postcode"):
        assert (by_name[name].kind, by_name[name].categories) == ("other", None)
    assert not any(c.nullable for c in schema.columns)


def test_nulls_booleans_dates_and_the_category_limit(tmp_path: Path) -> None:
    table = pa.table(
        {
            "flag": [True, False, None, True],
            "code": ["x1", "x2", "x3", "x4"],
            "level": ["lo", None, "hi", "lo"],
            "when": [date(2024, 1, d) for d in (1, 2, 3, 4)],
            "weight": pa.array([None, None, None, None], type=pa.float64()),
        }
    )
    schema, rows = profile(_source(tmp_path, table), max_categories=3, min_count=1)
    assert rows == 0
    flag, code, level, when, weight = schema.columns
    assert (flag.type, flag.kind, flag.categories, flag.nullable) == (
        "boolean",
        "categorical",
        ["false", "true"],
        True,
    )
    assert (code.kind, code.categories) == ("other", None)
    assert (level.kind, level.categories, level.nullable) == ("categorical", ["hi", "lo"], True)
    assert (when.type, when.kind) == ("date", "other")
    assert (weight.kind, weight.min, weight.max, weight.nullable) == ("numeric", None, None, True)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_category_held_by_fewer_than_min_count_rows_is_published_as_other(tmp_path: Path, fmt: str) -> None:
    counts = {"asthma": 30, "copd": 10, "lupus": 9, "rare": 1}
    values = [v for v, n in counts.items() for _ in range(n)] + [None] * 3
    table = pa.table({"diagnosis": values, "x": list(range(len(values)))})

    assert profile(_source(tmp_path, table, fmt), min_count=10)[0].columns[0].categories == [
        "asthma",
        "copd",
        "(other)",
    ]
    strict, _ = profile(_source(tmp_path, table, fmt), min_count=31)
    assert strict.columns[0].categories == ["(other)"]
    assert (strict.columns[0].kind, strict.columns[0].nullable) == ("categorical", True)
    everything, _ = profile(_source(tmp_path, table, fmt), min_count=1)
    assert everything.columns[0].categories == ["asthma", "copd", "lupus", "rare"]


def test_a_value_that_is_the_text_other_joins_the_rare_ones(tmp_path: Path) -> None:
    table = pa.table({"code": ["a"] * 12 + ["(other)"] * 12 + ["b"] * 2})
    assert profile(_source(tmp_path, table))[0].columns[0].categories == ["a", "(other)"]
    common = pa.table({"code": ["a"] * 12 + ["(other)"] * 12})
    assert profile(_source(tmp_path, common))[0].columns[0].categories == ["a", "(other)"]


def test_a_boolean_column_publishes_its_type_s_two_values_whatever_it_holds(tmp_path: Path) -> None:
    table = pa.table({"all_false": [False] * 20, "one_true": [False] * 19 + [True], "empty": [None] * 20})
    table = table.cast(pa.schema([(name, pa.bool_()) for name in table.column_names]))
    schema, _ = profile(_source(tmp_path, table))
    assert [c.categories for c in schema.columns] == [["false", "true"]] * 3


def test_min_count_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="min_count must be 1 or more, not 0"):
        profile(_source(tmp_path, pa.table({"x": ["a"]})), min_count=0)


def test_nan_and_infinity_are_not_bounds(tmp_path: Path) -> None:
    table = pa.table({"x": [1.5, float("nan"), float("inf"), 7.25, float("-inf")]})
    schema, _ = profile(_source(tmp_path, table))
    assert (schema.columns[0].min, schema.columns[0].max) == (1.4, 7.3)


def test_an_unpublishable_type_is_refused(tmp_path: Path) -> None:
    table = pa.table({"blob": pa.array([b"\x00\x01"], type=pa.binary())})
    with pytest.raises(InvalidInput, match="column 'blob' has type binary, which cannot be published"):
        profile(_source(tmp_path, table))
