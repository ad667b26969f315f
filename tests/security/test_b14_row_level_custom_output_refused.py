"""Threat B14 (docs/threats.md): approved custom code that returns the rows it read, or a column that
identifies people, is refused by the gateway before anything reaches release review, unless the
dataset's policy says `custom_outputs: allow_row_level`; then the output is held with a flag that
says it is row-level. Real processes: an orchestrator and a gateway on loopback, the real sandbox.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from custos.core.errors import Conflict
from custos.data.synthetic import synthetic_patients
from custos.gateway.code_logs import read_code_logs
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup

ADMIN = "admin@hospital-a"
TABLE = synthetic_patients(600, site=0, seed=1)
COLUMNS = ["patient_id", "age", "sex", "bmi", "region", "diagnosis"]
AUTHORIZATION: dict[str, Any] = {
    "format_version": 1,
    "permissions": {
        "org_admin": {"submit_job": "o:site", "activate_spec": "o:site"},
        "lead_researcher": {"submit_job": "any", "activate_spec": "any", "custom_code": "any"},
    },
}


def policy(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "dataset": name,
        "grants": [{"orgs": ["university"], "models": ["custom"], "columns": COLUMNS}],
        "custom_code": "review",
        **extra,
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    datasets = [
        DatasetSetup("patients", TABLE, policy("patients")),
        DatasetSetup("patients_rows", TABLE, policy("patients_rows", custom_outputs="allow_row_level")),
    ]
    site = GatewaySetup("site-a", "hospital-a", datasets, authorization=AUTHORIZATION)
    work = tmp_path_factory.mktemp("b14-rows")
    with Cluster(work, gateways=[site], users=[UserSetup("alice", "university")], project="b14") as c:
        yield c


def the_rows_it_read(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    filters = [{"column": "age", "op": ">=", "value": 80}]
    return dal.read(datasets[0], ["age", "sex", "bmi"], filters).to_pandas()


def some_people(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    frame = dal.read(datasets[0], ["patient_id", "age", "bmi"]).to_pandas()
    return frame.head(40).rename(columns={"patient_id": "who"})  # 40 of 600 rows, the id renamed


def by_region(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    frame = dal.read(datasets[0], ["region", "bmi"]).to_pandas()
    return frame.groupby("region", as_index=False).agg(n=("bmi", "size"), mean_bmi=("bmi", "mean"))


def run(cluster: Cluster, fn: Any, dataset: str) -> str:
    with cluster.client("alice") as alice, cluster.client(ADMIN) as admin:
        request = alice.submit(fn, [f"site-a/{dataset}"], {}, output="table")
        admin.approve_code(request.id, "reviewed")
        return alice.run_code(request.id).id


REFUSED = "policy refusal: PolicyDenied: the output is refused (the message is in the gateway's log"


def kept_reason(cluster: Cluster, job_id: str) -> str:
    """The refusal's reason, which names what the output holds: kept in the gateway's log."""
    (log,) = read_code_logs(cluster.work_dir / "state" / "site-a", job_id)
    return log.log


def held_jobs(cluster: Cluster) -> set[str]:
    with cluster.client(ADMIN) as admin:
        return {r.job_id for r in admin.releases()}


def test_b14_code_that_returns_the_rows_it_read_is_refused_at_the_gateway(cluster: Cluster) -> None:
    old = TABLE.filter(TABLE.column("age").to_numpy() >= 80).num_rows
    assert old >= 10  # a real cohort, not a small cell
    job_id = run(cluster, the_rows_it_read, "patients")
    with cluster.client("alice") as alice:
        with pytest.raises(Conflict, match=re.escape(REFUSED)):
            alice.wait_job(job_id, timeout=120)
        assert alice.job(job_id).state == "failed"
    assert job_id not in held_jobs(cluster)  # nothing reached release review
    assert f"row-level (it has {old} rows for a read of {old} rows" in kept_reason(cluster, job_id)


def test_b14_code_that_returns_an_identifier_column_is_refused_even_renamed(cluster: Cluster) -> None:
    job_id = run(cluster, some_people, "patients")
    with cluster.client("alice") as alice, pytest.raises(Conflict, match=re.escape(REFUSED)):
        alice.wait_job(job_id, timeout=120)
    assert job_id not in held_jobs(cluster)
    # The column's name is the code's choice: it stays in the log with the rest of the reason.
    assert "row-level (column 'who' identifies rows: its values each single out" in kept_reason(
        cluster, job_id
    )


def test_b14_an_aggregate_table_passes_to_review(cluster: Cluster) -> None:
    job_id = run(cluster, by_region, "patients")
    with cluster.client("alice") as alice:
        assert alice.wait_job(job_id, timeout=120).state == "awaiting_release"
    with cluster.client(ADMIN) as admin:
        held = next(r for r in admin.releases() if r.job_id == job_id)
        flags = admin.release(held.id).flags
    assert not [f for f in flags if f.rule in ("row_level", "min_count")]


def test_b14_a_policy_that_allows_row_level_outputs_holds_them_flagged(cluster: Cluster) -> None:
    job_id = run(cluster, some_people, "patients_rows")
    with cluster.client("alice") as alice:
        assert alice.wait_job(job_id, timeout=120).state == "awaiting_release"
    with cluster.client(ADMIN) as admin:
        held = next(r for r in admin.releases() if r.job_id == job_id)
        detail = admin.release(held.id)
    (flag,) = [f for f in detail.flags if f.rule == "row_level"]
    assert flag.dataset == "site-a/patients_rows" and flag.value_class == "table" and flag.row is None
    assert "column 'who' identifies rows" in flag.reason
    assert len(detail.result["sites"]["site-a/patients_rows"]["rows"]) == 40
