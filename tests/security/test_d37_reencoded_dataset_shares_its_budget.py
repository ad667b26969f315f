"""Threat D37 (docs/threats.md): registering the same rows again to start a fresh privacy budget.

Through a real gateway: dora spends ε on `cohort` (Parquet); the same rows are then registered as
`cohort_copy`, a CSV file with the rows shuffled and the columns reordered and renamed, under a policy
with the same caps. The copy shares the ledger of the original: dora's spending on it starts where it
stood, and the job that would pass the cap is refused, on the copy and on the original alike.

A ledger kept under the older lineage (the SHA-256 of the file's bytes) is carried forward: what was
spent under it still counts after the gateway restarts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import yaml

from custos.core.errors import Conflict
from custos.data.synthetic import synthetic_patients
from custos.gateway.budget import BUDGET_FILE
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.privacy import BudgetCaps, BudgetLedger, content_lineage
from custos.sdk import Client

GATEWAY = "site-a"
COLUMNS = ["age", "sex", "bmi", "region"]
RENAMED = {"age": "age_years", "sex": "gender", "bmi": "body_mass_index", "region": "area"}
CAPS = {"epsilon_per_researcher": 3.0, "epsilon_per_org": 10.0}
COUNT = {"statistics": ["count"]}


def dp_policy(dataset: str, columns: list[str]) -> dict[str, Any]:
    """Pure DP at ε 1 per job; dora may spend ε 3 on the data."""
    return {
        "dataset": dataset,
        "grants": [{"orgs": ["university"], "models": ["stats@>=1.0,<2"], "columns": columns}],
        "privacy": {"dp": {"mechanism": "laplace", "epsilon_per_job": 1.0}, "budget": CAPS},
    }


COHORT = synthetic_patients(2_000, site=0, seed=41).select(COLUMNS)
LEGACY = synthetic_patients(1_500, site=1, seed=43)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    datasets = [
        DatasetSetup("cohort", COHORT, dp_policy("cohort", COLUMNS)),
        DatasetSetup("legacy", LEGACY, dp_policy("legacy", COLUMNS)),
    ]
    site = GatewaySetup(GATEWAY, "hospital-a", datasets)
    work = tmp_path_factory.mktemp("reencoded")
    with Cluster(work, gateways=[site], users=[UserSetup("dora", "university")], project="d37") as c:
        yield c


def run_count(dora: Client, dataset: str, column: str) -> dict[str, Any]:
    """One DP count (ε 1) on site-a/`dataset`; the gateway's report of dora's standing there."""
    spec = dora.create_spec(f"count-{dataset}", "stats@1.0.0", [f"{GATEWAY}/{dataset}"], [column])
    dora.activate_spec(spec.id)
    job = dora.submit_job(spec.id, {**COUNT, "columns": [column]})
    dora.wait_job(job.id, timeout=120)
    result = dora.job_result(job.id).data
    standing: dict[str, Any] = result["budget"][f"{GATEWAY}/{dataset}"]
    return standing


def register_csv_copy(cluster: Cluster, name: str, table: pa.Table) -> None:
    """Stop the gateway, add `table` re-encoded as CSV to its catalogue with a signed DP policy, and
    start it again: the custodian's way to register a dataset."""
    cluster.stop_gateway(GATEWAY)
    site = cluster.site_dir(GATEWAY)
    pa_csv.write_csv(table, site / f"{name}.csv")
    policy = dp_policy(name, table.column_names)
    signed = cluster.sign_policy(GATEWAY, name, policy)
    (site / f"{name}.policy.json").write_text(signed.model_dump_json(), encoding="utf-8")
    catalog = site / "DATASETS.yaml"
    entries = yaml.safe_load(catalog.read_text(encoding="utf-8"))
    entries["datasets"].append({"name": name, "path": f"{name}.csv", "policy": f"{name}.policy.json"})
    catalog.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    (gateway,) = cluster.gateways
    cluster.gateways[0] = dataclasses.replace(
        gateway, datasets=[*gateway.datasets, DatasetSetup(name, table, policy)]
    )
    cluster.start_gateway(GATEWAY)
    cluster.wait_for_datasets()


def reencoded(table: pa.Table) -> pa.Table:
    """The same rows shuffled, the columns in reverse order and renamed."""
    shuffled = table.take(np.random.default_rng(5).permutation(table.num_rows))
    reordered = shuffled.select(list(reversed(COLUMNS)))
    return reordered.rename_columns([RENAMED[c] for c in reordered.column_names])


def test_d37_a_reencoded_resorted_renamed_copy_shares_the_budget(cluster: Cluster) -> None:
    with cluster.client("dora") as dora:
        run_count(dora, "cohort", "age")
        assert run_count(dora, "cohort", "age")["spent_epsilon"] == pytest.approx(2.0)

    # The copy is a different file (another format, order, column names), holding the same rows.
    register_csv_copy(cluster, "cohort_copy", reencoded(COHORT))

    with cluster.client("dora") as dora:
        # The restart kept what was spent, and the copy starts from it: ε 1 of 3 remains.
        standing = run_count(dora, "cohort_copy", RENAMED["age"])
        assert (standing["spent_epsilon"], standing["remaining_epsilon"]) == pytest.approx((3.0, 0.0))
        for dataset, column in (("cohort_copy", RENAMED["bmi"]), ("cohort", "bmi")):
            with pytest.raises(Conflict) as refused:
                run_count(dora, dataset, column)
            assert f"privacy budget for researcher dora on {dataset}: spent ε=3 of 3" in str(refused.value)


def test_d37_spending_kept_under_the_older_lineage_still_counts_after_a_restart(cluster: Cluster) -> None:
    # What a gateway of the previous release wrote: its ledger keyed by the SHA-256 of the file.
    cluster.stop_gateway(GATEWAY)
    ledger = BudgetLedger(cluster.work_dir / "state" / GATEWAY / BUDGET_FILE)
    spent = ledger.reserve(
        lineage=content_lineage(cluster.site_dir(GATEWAY) / "legacy.parquet"),
        dataset="legacy", researcher="dora", org="university", epsilon=2.5, delta=0.0,
        caps=BudgetCaps(**CAPS), job_id="job_before_upgrade/round-0",
    )  # fmt: skip
    ledger.commit(spent.id)
    cluster.start_gateway(GATEWAY)
    cluster.wait_for_datasets()

    with cluster.client("dora") as dora:
        with pytest.raises(Conflict) as refused:
            run_count(dora, "legacy", "age")
        assert "privacy budget for researcher dora on legacy: spent ε=2.5 of 3" in str(refused.value)

    # And again after another restart: the carried spending is neither lost nor counted twice.
    cluster.stop_gateway(GATEWAY)
    cluster.start_gateway(GATEWAY)
    cluster.wait_for_datasets()
    with cluster.client("dora") as dora, pytest.raises(Conflict) as again:
        run_count(dora, "legacy", "bmi")
    assert "spent ε=2.5 of 3; this job needs ε=1" in str(again.value)
