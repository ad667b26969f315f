"""Fixtures of the security tests that run the orchestrator in process: a module lists its people
(`PEOPLE`: name, "user" or "gateway", org, role) and gets their kits, an orchestrator on a fresh
database for each test, and that orchestrator's audit trail. A module may define its own instead.

`capped_cluster` is a real deployment (an orchestrator and one gateway, as processes) whose site caps
its sandboxes low in `gateway.yaml`, so that approved custom code can break a limit quickly;
`run_approved` submits a function as alice, approves it as the site's custodian and runs it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from custos.local.cluster import Cluster
from custos.pki.kit import Kit
from custos.testing.inprocess import orchestrator_in_process, provision_people


@pytest.fixture(scope="module")
def kits(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    people = request.module.PEOPLE
    return provision_people(tmp_path_factory.mktemp("kits") / "project", "security", people)


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path, audit_path: Path) -> Iterator[TestClient]:
    with orchestrator_in_process(kits, tmp_path, audit_path=audit_path) as client:
        yield client


# --- a real deployment whose sandboxes are capped low --------------------------------------------

CAPPED_GATEWAY = "site-a"
CAPPED_DATASET = f"{CAPPED_GATEWAY}/patients_code"
# Low enough that breaking one is quick and cheap, high enough for the runtime to start on a busy machine.
SANDBOX_CAPS = {"cpu_seconds": 10, "memory_mb": 1536, "wall_seconds": 120}


@pytest.fixture(scope="session")
def capped_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from custos.data.synthetic import synthetic_patients
    from custos.local.cluster import DatasetSetup, GatewaySetup, UserSetup

    policy = {
        "dataset": "patients_code",
        "grants": [{"orgs": ["university"], "models": ["custom"], "columns": ["patient_id", "age"]}],
        "custom_code": "review",
    }
    authorization = {
        "format_version": 1,
        "permissions": {
            "org_admin": {"submit_job": "o:site", "activate_spec": "o:site"},
            "lead_researcher": {"submit_job": "any", "activate_spec": "any", "custom_code": "any"},
        },
    }
    gateway = GatewaySetup(
        CAPPED_GATEWAY,
        "hospital-a",
        [DatasetSetup("patients_code", synthetic_patients(2_000, site=0, seed=11), policy)],
        authorization=authorization,
        config={"sandbox": SANDBOX_CAPS},
    )
    work = tmp_path_factory.mktemp("capped")
    cluster = Cluster(work, gateways=[gateway], users=[UserSetup("alice", "university")])
    try:
        cluster.start()
    except Exception:
        print(cluster.logs())
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def run_approved(capped_cluster: Any) -> Callable[..., str]:
    """`run_approved(fn, output="json", params=None)`: the job id of `fn`, approved and running."""

    def run(fn: Callable[..., Any], output: str = "json", params: dict[str, Any] | None = None) -> str:
        with capped_cluster.client("alice") as alice, capped_cluster.client("admin@hospital-a") as admin:
            request = alice.submit(fn, [CAPPED_DATASET], params or {}, output=output)
            admin.approve_code(request.id)
            return str(alice.run_code(request.id).id)

    return run


@pytest.fixture(scope="session")
def sdc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Orchestrator + gateways site-a and site-b, each with the cohort of `tests.security.sdc_cohort`
    under each of its disclosure policies, and the researcher alice (university)."""
    from tests.security.sdc_cohort import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("sdc-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()
