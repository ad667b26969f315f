"""The gateway's budget keys: the rows' fingerprint, shared by every copy of the same rows, linked to the
digest of the file's bytes under which earlier releases kept the ledger."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from custos.core.wire import Resources, Submitter, TaskAssignment, TaskKind
from custos.data.catalog import DatasetEntry
from custos.data.synthetic import synthetic_patients, write_dataset
from custos.gateway.budget import BUDGET_FILE, GatewayBudget, budget_job_id
from custos.gateway.site import SiteDataset, load_dataset
from custos.privacy import BudgetCaps, BudgetExhausted, BudgetLedger, PrivacyCost, content_lineage

CAPS = BudgetCaps(epsilon_per_researcher=2.0, epsilon_per_org=10.0)
TABLE = synthetic_patients(400, site=0, seed=12).select(["age", "sex", "bmi"])


def dataset(folder: Path, name: str, table: pa.Table, fmt: str = "parquet") -> SiteDataset:
    path = folder / f"{name}.{fmt}"
    if fmt == "csv":
        pa_csv.write_csv(table, path)
    else:
        write_dataset(table, path)
    return load_dataset(DatasetEntry(name, path, fmt, name, path.with_suffix(".policy.json")))  # type: ignore[arg-type]


def task(job: str, name: str) -> TaskAssignment:
    return TaskAssignment(
        task_id=f"task_{job}_{name}", attempt=1, kind=TaskKind.COMPUTE, spec_id="spec_1", job_id=job,
        round=0, model="stats@1.0.0", dataset=name, columns=["age"], params={}, round_input={},
        submitter=Submitter(name="dora", org="university", role="lead_researcher"), resources=Resources(),
    )  # fmt: skip


def test_a_csv_copy_of_the_same_rows_shares_the_budget(tmp_path: Path) -> None:
    original = dataset(tmp_path, "cohort", TABLE)
    shuffled = TABLE.take(np.random.default_rng(3).permutation(TABLE.num_rows))
    copy = dataset(tmp_path, "cohort_copy", shuffled.rename_columns(["years", "gender", "body_mass"]), "csv")
    budget = GatewayBudget(tmp_path / BUDGET_FILE)
    assert budget.lineage(copy) == budget.lineage(original)

    budget.reserve(task("job_1", "cohort"), original, CAPS, PrivacyCost(1.5, 0.0))
    with pytest.raises(BudgetExhausted, match=r"on cohort_copy: spent ε=1\.5 of 2"):
        budget.reserve(task("job_2", "cohort_copy"), copy, CAPS, PrivacyCost(1.0, 0.0))


def test_one_job_reading_two_copies_pays_for_each(tmp_path: Path) -> None:
    original = dataset(tmp_path, "cohort", TABLE)
    copy = dataset(tmp_path, "cohort_copy", TABLE, "csv")
    budget = GatewayBudget(tmp_path / BUDGET_FILE)

    first = budget.reserve(task("job_1", "cohort"), original, CAPS, PrivacyCost(1.0, 0.0))
    second = budget.reserve(task("job_1", "cohort_copy"), copy, CAPS, PrivacyCost(1.0, 0.0))

    assert first.id != second.id
    assert budget_job_id(task("job_1", "cohort")) == "job_1/cohort/round-0"
    assert budget.ledger.spent(budget.lineage(original), researcher="dora").epsilon == 2.0


def test_spending_under_the_file_digest_of_an_earlier_release_still_counts(tmp_path: Path) -> None:
    cohort = dataset(tmp_path, "cohort", TABLE)
    BudgetLedger(tmp_path / BUDGET_FILE).reserve(
        lineage=content_lineage(cohort.entry.path), dataset="cohort", researcher="dora",
        org="university", epsilon=1.25, delta=0.0, caps=CAPS, job_id="job_0/round-0",
    )  # fmt: skip

    for _ in range(2):  # a gateway restart: a new GatewayBudget on the same ledger
        budget = GatewayBudget(tmp_path / BUDGET_FILE)
        standing = budget.standing(task("job_1", "cohort"), cohort, CAPS)
        assert (standing["spent_epsilon"], standing["remaining_epsilon"]) == (1.25, 0.75)


def test_a_dataset_loaded_without_its_lineage_gets_it_from_its_file(tmp_path: Path) -> None:
    cohort = dataset(tmp_path, "cohort", TABLE)
    bare = SiteDataset(cohort.entry, cohort.source, cohort.schema, cohort.row_count, None, "")
    assert GatewayBudget(tmp_path / BUDGET_FILE).lineage(bare) == cohort.lineage
