"""A restart with the same bytes and minimum cell count publishes the profile it kept; any change to
the bytes or the minimum profiles again, and an unreadable entry is profiled again, never an error."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from custos.data.catalog import DatasetEntry
from custos.data.synthetic import synthetic_patients, write_dataset
from custos.gateway.profile_cache import CACHE_FOLDER, ProfileCache
from custos.gateway.site import SiteDataset, load_dataset

TABLE = synthetic_patients(300, site=0, seed=3).select(["age", "bmi", "smoker"])


def entry(folder: Path, table: pa.Table = TABLE) -> DatasetEntry:
    path = folder / "cohort.parquet"
    write_dataset(table, path)
    return DatasetEntry("cohort", path, "parquet", "cohort", folder / "cohort.policy.json")


def cache_file(state: Path) -> Path:
    (found,) = (state / CACHE_FOLDER).glob("*.json")
    return found


def mark(state: Path, row_count: int) -> None:
    """Change the kept row count, so that a load that used the entry shows it."""
    path = cache_file(state)
    data = json.loads(path.read_text())
    data["row_count"] = row_count
    path.write_text(json.dumps(data))


def published(site: SiteDataset) -> tuple[object, ...]:
    return (site.schema, site.row_count, site.mock_b64, site.lineage, site.file_lineage)


def test_a_second_load_of_the_same_bytes_publishes_what_the_first_kept(tmp_path: Path) -> None:
    state, data = tmp_path / "state", tmp_path / "data"
    data.mkdir()
    first = load_dataset(entry(data), cache=ProfileCache(state))
    again = load_dataset(entry(data), cache=ProfileCache(state))
    assert published(again) == published(first)
    fresh = load_dataset(entry(data))
    assert (fresh.schema, fresh.row_count, fresh.lineage) == (first.schema, first.row_count, first.lineage)
    mark(state, 12340)
    assert load_dataset(entry(data), cache=ProfileCache(state)).row_count == 12340


def test_changed_bytes_or_minimum_are_profiled_again(tmp_path: Path) -> None:
    state, data = tmp_path / "state", tmp_path / "data"
    data.mkdir()
    first = load_dataset(entry(data), cache=ProfileCache(state))
    mark(state, 12340)
    assert load_dataset(entry(data), min_count=3, cache=ProfileCache(state)).row_count == first.row_count
    mark(state, 12340)
    grown = entry(data, synthetic_patients(420, site=0, seed=4).select(["age", "bmi", "smoker"]))
    reloaded = load_dataset(grown, cache=ProfileCache(state))
    assert reloaded.row_count == 420
    assert reloaded.file_lineage != first.file_lineage
    assert reloaded.lineage != first.lineage


def test_an_unreadable_entry_is_a_miss(tmp_path: Path) -> None:
    state, data = tmp_path / "state", tmp_path / "data"
    data.mkdir()
    first = load_dataset(entry(data), cache=ProfileCache(state))
    for broken in ("{not json", json.dumps({"key": None}), json.dumps([1])):
        cache_file(state).write_text(broken)
        again = load_dataset(entry(data), cache=ProfileCache(state))
        # Profiled again (a new mock is drawn) and kept again.
        assert (again.schema, again.row_count, again.lineage) == (
            first.schema,
            first.row_count,
            first.lineage,
        )
        assert json.loads(cache_file(state).read_text())["mock_b64"] == again.mock_b64
