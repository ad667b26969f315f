"""/metrics: Prometheus text for project admins only, with the figures of what happened (leases that
expired, tasks queued again, task latency, requests by route template) and of what is stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from custos.core.clock import utcnow
from custos.core.wire import result_digest
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.signin import sign_in
from custos.policy.signing import sign_policy

POLICY = """
dataset: patients
grants:
  - orgs: [university]
    models: ["stats@>=1.0,<2"]
    columns: [age]
min_count: 10
"""
SCHEMA = {"columns": [{"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 100}]}
SPEC = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    root = tmp_path_factory.mktemp("kits")
    project = ProjectSpec.model_validate(
        {
            "name": "metrics-test",
            "participants": [
                {"name": "site-a", "type": "gateway", "org": "hospital-a"},
                {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
                {"name": "admin-a", "type": "user", "org": "hospital-a", "role": "org_admin"},
                {"name": "root", "type": "user", "org": "consortium", "role": "project_admin"},
            ],
        }
    )
    provision(project, root)
    return {p.name: load_kit(p) for p in root.iterdir() if (p / "config.json").exists()}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", audit_path=tmp_path / "a.log"
    )
    with TestClient(create_app(settings, kits["orchestrator"].root_certificate, clock)) as client:
        yield client


def bearer(api: TestClient, kit: Kit) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_in(api, kit).token}"}


def scrape(api: TestClient, kits: dict[str, Kit]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = api.get("/metrics", headers=bearer(api, kits["root"]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def _publish_and_activate(api: TestClient, kits: dict[str, Kit]) -> dict[str, str]:
    admin = kits["admin-a"]
    signed = sign_policy(
        POLICY, "site-a/patients", key=admin.private_key, certificate=admin.certificate, now=utcnow()
    )
    gw = bearer(api, kits["site-a"])
    dataset = {"name": "patients", "schema": SCHEMA, "row_count": 100, "mock_arrow_b64": ""}
    body = {"datasets": [dataset | {"policy": signed.model_dump(mode="json")}]}
    assert api.post("/api/v1/gateway/publish", json=body, headers=gw).status_code == 200
    alice = bearer(api, kits["alice"])
    spec_id = api.post("/api/v1/specs", json=SPEC, headers=alice).json()["id"]
    assert api.post(f"/api/v1/specs/{spec_id}/activate", headers=alice).status_code == 200
    return gw


def test_metrics_are_for_project_admins_only(api: TestClient, kits: dict[str, Kit]) -> None:
    assert api.get("/metrics").status_code == 401
    refused = api.get("/metrics", headers=bearer(api, kits["alice"]))
    assert refused.status_code == 403
    assert "detail" in refused.json()
    assert api.get("/metrics", headers=bearer(api, kits["admin-a"])).status_code == 403
    samples = scrape(api, kits)
    assert samples[("custos_database_up", ())] == 1
    assert samples[("custos_jobs", (("state", "queued"),))] == 0


def test_an_expired_lease_a_retry_and_a_result_are_counted(
    api: TestClient, kits: dict[str, Kit], clock: Clock
) -> None:
    gw = _publish_and_activate(api, kits)
    task = api.get("/api/v1/gateway/tasks/next?wait=0&poll=1", headers=gw).json()["task"]
    assert scrape(api, kits)[("custos_tasks", (("state", "leased"),))] == 1
    clock.now += timedelta(seconds=300 + 60 + 1)  # past the lease: the spec's wall time and the margin
    gw = bearer(api, kits["site-a"])
    again = api.get("/api/v1/gateway/tasks/next?wait=0&poll=2", headers=gw).json()["task"]
    assert (again["task_id"], again["attempt"]) == (task["task_id"], 2)
    clock.now += timedelta(seconds=2)
    result = {"validated": True}
    upload = {"attempt": 2, "status": "done", "result": result, "digest": result_digest("done", result, None)}
    r = api.post(f"/api/v1/gateway/tasks/{task['task_id']}/result", json=upload, headers=gw)
    assert r.status_code == 200

    samples = scrape(api, kits)
    assert samples[("custos_lease_expiries_total", ())] == 1
    assert samples[("custos_task_retries_total", ())] == 1
    assert samples[("custos_leases_lost_total", ())] == 0
    assert samples[("custos_tasks", (("state", "done"),))] == 1
    assert samples[("custos_tasks", (("state", "leased"),))] == 0
    latency = (("kind", "prepare"), ("status", "done"))
    assert samples[("custos_task_latency_seconds_count", latency)] == 1
    # From its queueing, over both attempts: the expired lease and the 2 s after it.
    assert samples[("custos_task_latency_seconds_sum", latency)] >= 363
    assert samples[("custos_gateways_online", ())] == 1
    assert samples[("custos_long_polls_open", ())] == 0
    # Requests are counted by route template, never by the path with its ids.
    activate = (("method", "POST"), ("route", "/api/v1/specs/{spec_id}/activate"), ("status", "200"))
    assert samples[("custos_http_requests_total", activate)] == 1
    denied = (("method", "GET"), ("route", "/metrics"), ("status", "200"))
    assert samples[("custos_http_requests_total", denied)] >= 1
    assert not any(spec_id_in(labels) for _, labels in samples)


def spec_id_in(labels: tuple[tuple[str, str], ...]) -> bool:
    return any(value.startswith("spec_") for _, value in labels)
