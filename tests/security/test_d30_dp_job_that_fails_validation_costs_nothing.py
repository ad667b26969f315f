"""Threat D30 (docs/threats.md): a DP job that cannot succeed must cost nothing. Sites whose public
categories differ cannot pool a DP frequency table; a job pooling a DP dataset with an exact one
cannot pool at all; a table over more levels than a site's policy allows is refused. Each such job
used to run, debit the sites' ledgers and only then fail. Through a real orchestrator and real
gateways: the job is refused at submit (400, naming the column and each dataset's categories; 403 for
what a policy refuses), and no gateway's ledger and no row of the orchestrator's mirror changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from custos.core.errors import InvalidInput, PermissionDenied
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.sdk import Client

pytestmark = pytest.mark.integration

COLUMNS = ["age", "region"]
BUDGET = {"epsilon_per_researcher": 5.0, "epsilon_per_org": 10.0}


def cohort(regions: list[str], rows: int = 300) -> pa.Table:
    return pa.table(
        {
            "age": [20 + (i * 7) % 60 for i in range(rows)],
            "region": [regions[i % len(regions)] for i in range(rows)],
        }
    )


def policy(dataset: str, *, dp: bool = True, **disclosure: Any) -> dict[str, Any]:
    grants = [{"orgs": ["university"], "models": ["stats@>=1.0,<2"], "columns": COLUMNS}]
    privacy: dict[str, Any] = {"disclosure": {"min_count": 10, **disclosure}}
    if dp:
        privacy |= {"dp": {"mechanism": "laplace", "epsilon_per_job": 1.0}, "budget": BUDGET}
    return {"dataset": dataset, "grants": grants, "privacy": privacy}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """site-a holds `cohort` with regions north and south; site-b holds `cohort` with a third region,
    `cohort_exact` (north and south, no DP) and `cohort_levels` (north and south, DP, at most one
    level per table)."""
    two = cohort(["north", "south"])
    site_a = GatewaySetup("site-a", "hospital-a", [DatasetSetup("cohort", two, policy("cohort"))])
    site_b = GatewaySetup(
        "site-b",
        "hospital-b",
        [
            DatasetSetup("cohort", cohort(["north", "south", "west"]), policy("cohort")),
            DatasetSetup("cohort_exact", two, policy("cohort_exact", dp=False)),
            DatasetSetup("cohort_levels", two, policy("cohort_levels", max_levels=1)),
        ],
    )
    work = tmp_path_factory.mktemp("dp-validation")
    with Cluster(work, gateways=[site_a, site_b], users=[UserSetup("dora", "university")]) as c:
        yield c


def reservations(cluster: Cluster) -> dict[str, int]:
    """How many charges each gateway's ledger holds (no ledger file: none)."""
    found = {}
    for site in ("site-a", "site-b"):
        path = cluster.work_dir / "state" / site / "budget.db"
        if not path.exists():
            found[site] = 0
            continue
        with sqlite3.connect(path) as db:
            found[site] = int(db.execute("SELECT count(*) FROM reservations").fetchone()[0])
    return found


def attempt(dora: Client, datasets: list[str], params: dict[str, Any]) -> Exception | None:
    """Submit the job; when it is accepted, let it run to its end. The refusal, if any."""
    spec = dora.create_spec("validate-then-charge", "stats@1.0.0", datasets, COLUMNS)
    dora.activate_spec(spec.id)
    try:
        job = dora.submit_job(spec.id, params)
    except (InvalidInput, PermissionDenied) as refused:
        return refused
    try:
        dora.wait_job(job.id, timeout=120)
    except Exception as failed:  # the job ran and failed: what this test must show cannot happen
        return AssertionError(f"the job ran and failed: {failed}")
    return AssertionError("the job ran")


def spent(cluster: Cluster, dora: Client) -> tuple[dict[str, int], list[tuple[str, str, float]]]:
    """Each gateway's count of charges, and dora's rows of the orchestrator's mirror."""
    mirror = sorted((row.dataset, row.kind, row.spent_epsilon) for row in dora.budget())
    return reservations(cluster), mirror


def test_d30_a_dp_frequency_table_over_different_public_categories_is_refused_at_submit(
    cluster: Cluster,
) -> None:
    dora = cluster.client("dora")
    before = spent(cluster, dora)

    refused = attempt(dora, ["site-a/cohort", "site-b/cohort"], {"columns": ["region"]})

    assert spent(cluster, dora) == before
    assert isinstance(refused, InvalidInput), refused
    assert str(refused) == (
        "columns[0]: column 'region' has different public categories at the job's datasets "
        "(site-a/cohort: north, south; site-b/cohort: north, south, west); a differentially private "
        "table pools the same categories from every site"
    )


def test_d30_a_dp_group_by_over_different_public_categories_is_refused_at_submit(
    cluster: Cluster,
) -> None:
    dora = cluster.client("dora")
    before = spent(cluster, dora)

    refused = attempt(
        dora,
        ["site-a/cohort", "site-b/cohort"],
        {"columns": ["age"], "statistics": ["count"], "group_by": "region"},
    )

    assert spent(cluster, dora) == before
    assert isinstance(refused, InvalidInput), refused
    assert "group_by: column 'region' has different public categories" in str(refused)


def test_d30_a_job_pooling_a_dp_dataset_with_an_exact_one_is_refused_at_submit(cluster: Cluster) -> None:
    dora = cluster.client("dora")
    before = spent(cluster, dora)

    refused = attempt(dora, ["site-a/cohort", "site-b/cohort_exact"], {"columns": ["age"]})

    assert spent(cluster, dora) == before
    assert isinstance(refused, InvalidInput), refused
    assert str(refused) == (
        "the job pools datasets with differential privacy (site-a/cohort) and without "
        "(site-b/cohort_exact); their results cannot be pooled: choose datasets whose policies agree"
    )


def test_d30_a_table_over_more_levels_than_a_site_allows_is_refused_at_submit(cluster: Cluster) -> None:
    dora = cluster.client("dora")
    before = spent(cluster, dora)

    refused = attempt(dora, ["site-a/cohort", "site-b/cohort_levels"], {"columns": ["region"]})

    assert spent(cluster, dora) == before
    assert isinstance(refused, PermissionDenied), refused  # 403
    assert "site-b/cohort_levels: column 'region' has more than 1 levels" in str(refused)


def test_d30_a_valid_dp_job_is_charged_once_per_site(cluster: Cluster) -> None:
    """The checks refuse only what would fail: the same job over agreeing datasets runs and pays."""
    dora = cluster.client("dora")
    before = reservations(cluster)
    spec = dora.create_spec("agreeing", "stats@1.0.0", ["site-a/cohort", "site-b/cohort_levels"], COLUMNS)
    dora.activate_spec(spec.id)

    job = dora.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
    dora.wait_job(job.id, timeout=120)

    assert reservations(cluster) == {site: count + 1 for site, count in before.items()}
    result = dict(dora.job_result(job.id).data)
    assert set(result["dp"]["spent"]) == {"site-a/cohort", "site-b/cohort_levels"}
