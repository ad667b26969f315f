"""A dataset as the gateway loads it: what it publishes (no category under the policy's minimum cell
count; `(other)` instead), what computations read (the same closed set of categories), and the models
that take categories from the public schema working on both."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml

from custos.computations.glm.model import GlmModel
from custos.computations.stats.dp_release import category_counts
from custos.computations.stats.model import StatsModel
from custos.computations.stats.site import SiteRows
from custos.core.dal_wire import Filter
from custos.core.errors import InvalidInput
from custos.core.wire import SignedPolicy
from custos.data.catalog import DatasetEntry
from custos.data.file_source import FileSource
from custos.data.fingerprint import row_lineage
from custos.data.ipc import table_from_ipc_b64
from custos.data.synthetic import synthetic_patients, write_dataset
from custos.gateway.site import SiteDataset, load_dataset, published_min_count
from custos.policy import load_policy
from custos.privacy.controls import DpSettings

OTHER = "(other)"
DIAGNOSES = {"asthma": 150, "copd": 120, "diabetes": 20, "lupus": 6, "rare-disorder": 2}


def cohort() -> pa.Table:
    diagnosis = [d for d, n in DIAGNOSES.items() for _ in range(n)]
    np.random.default_rng(8).shuffle(diagnosis)
    table = synthetic_patients(len(diagnosis), site=0, seed=8).select(["age", "bmi", "smoker", "diagnosis"])
    return table.set_column(3, "diagnosis", pa.array(diagnosis))


TABLE = cohort()


def entry(folder: Path, policy: dict[str, Any] | None = None) -> DatasetEntry:
    path = folder / "cohort.parquet"
    write_dataset(TABLE, path)
    policy_path = folder / "cohort.policy.json"
    if policy is not None:
        # Unverified here: load_dataset reads the minimum from it; the PolicyKeeper verifies it.
        signed = SignedPolicy(
            dataset="site-a/cohort",
            policy_yaml=yaml.safe_dump(policy),
            issued_at=datetime(2025, 1, 1, tzinfo=UTC),
            signer_certificate_pem="-",
            signature="-",
        )
        policy_path.write_text(signed.model_dump_json(), encoding="utf-8")
    return DatasetEntry("cohort", path, "parquet", "cohort", policy_path)


class ServedReader:
    """The DAL's view of a loaded dataset, without the Flight server: reads of its served source."""

    def __init__(self, dataset: SiteDataset) -> None:
        self.dataset = dataset

    def read(self, dataset: str, columns: Sequence[str], filters: Sequence[Filter] = ()) -> pa.Table:
        return self.dataset.source.read(columns, filters).read_all()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SiteDataset:
    return load_dataset(entry(tmp_path_factory.mktemp("site")))


def test_the_schema_and_the_mock_publish_rare_categories_as_other(site: SiteDataset) -> None:
    diagnosis = site.schema.column("diagnosis")
    assert diagnosis.categories == ["asthma", "copd", "diabetes", OTHER]
    assert site.schema.column("smoker").categories == ["no", "yes"]
    mock = table_from_ipc_b64(site.mock_b64)
    assert set(mock.column("diagnosis").drop_null().to_pylist()) <= set(diagnosis.categories)


def test_computations_read_the_closed_categories_and_the_budget_keys_the_stored_rows(
    site: SiteDataset, tmp_path: Path
) -> None:
    served = Counter(site.source.read(["diagnosis"]).read_all().column("diagnosis").to_pylist())
    assert served == {"asthma": 150, "copd": 120, "diabetes": 20, OTHER: 8}
    assert site.lineage == row_lineage(FileSource("raw", site.entry.path, "parquet"))


def test_the_minimum_comes_from_the_policy_file_the_larger_of_its_two(tmp_path: Path) -> None:
    policy = {"dataset": "cohort", "min_count": 5, "privacy": {"disclosure": {"min_count": 25}}}
    strict = load_dataset(entry(tmp_path, policy))
    assert strict.schema.column("diagnosis").categories == ["asthma", "copd", OTHER]
    assert published_min_count(load_policy(yaml.safe_dump(policy))) == 25
    assert published_min_count(load_policy(yaml.safe_dump({"dataset": "cohort", "min_count": 5}))) == 5
    assert published_min_count(None) == 10
    lax = load_dataset(entry(tmp_path), min_count=2)
    assert lax.schema.column("diagnosis").categories == [
        "asthma",
        "copd",
        "diabetes",
        "lupus",
        "rare-disorder",
    ]
    assert lax.source.read(["diagnosis"]).read_all().column("diagnosis").to_pylist().count("lupus") == 6


def test_glm_levels_list_other_and_code_the_rare_rows_there(site: SiteDataset) -> None:
    model = GlmModel()
    params: dict[str, Any] = {
        "family": "gaussian",
        "outcome": "bmi",
        "predictors": ["age", "diagnosis"],
        "levels": {"diagnosis": ["asthma", "copd", "diabetes"]},
    }
    with pytest.raises(InvalidInput, match=r"the dataset's category '\(other\)' is not listed"):
        model.validate_params(params, site.schema, ["age", "bmi", "diagnosis"])
    params["levels"]["diagnosis"].append(OTHER)
    model.validate_params(params, site.schema, ["age", "bmi", "diagnosis"])

    result = model.compute_site(ServedReader(site), "cohort", params, model.start(params).round_input)
    assert result["checks"]["levels"]["diagnosis"] == [150, 120, 20, 8]
    assert result["n"] == TABLE.num_rows


def test_stats_tables_count_the_rare_rows_under_other(site: SiteDataset) -> None:
    model = StatsModel()
    params = {"columns": ["diagnosis"]}
    model.validate_params(params, site.schema, ["diagnosis"])
    result = model.compute_site(ServedReader(site), "cohort", params, {"phase": "summary"})
    (table,) = result["frequencies"]
    assert {c["category"]: c["count"] for c in table["cells"]} == {
        "asthma": 150,
        "copd": 120,
        "diabetes": 20,
        OTHER: 8,
        "(missing)": 0,  # the column's nulls: a cell like any other
    }

    dp = DpSettings(mechanism="laplace", epsilon_per_job=1.0)
    plan = model.plan_dp(params, site.schema, dp)
    categories = plan.settings["categories"]["diagnosis"]
    assert categories == site.schema.column("diagnosis").categories
    rows = SiteRows(ServedReader(site).read("cohort", ["diagnosis"]), None)
    assert category_counts(rows, "diagnosis", categories) == [150, 120, 20, 8]
