"""Site health in process: each poll's heartbeat records a gateway's version and tasks in flight, a
gateway unseen for one long poll and a margin is offline, and the datasets and open jobs of an offline
site say so. (Real processes stopped by signal: tests/integration/test_site_health.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.unit.orchestrator.test_api import bearer, kits, publish

from custos.core.clock import utcnow
from custos.core.wire import result_digest
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.kit import Kit

__all__ = ["kits"]  # the module's fixture, used here


class StepClock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path, clock: StepClock) -> Iterator[TestClient]:
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", audit_path=tmp_path / "a.log"
    )
    with TestClient(create_app(settings, kits["orchestrator"].root_certificate, clock)) as client:
        yield client


def poll(api: TestClient, gw: dict[str, str], **heartbeat: object) -> dict[str, object]:
    body = {"wait": 0, "heartbeat": {"version": "0.1.0", "tasks_in_flight": 0} | heartbeat}
    response = api.post("/api/v1/gateway/tasks/next", json=body, headers=gw)
    assert response.status_code == 200, response.text
    task: dict[str, object] = response.json()
    return task


def sites(api: TestClient, who: dict[str, str]) -> dict[str, dict[str, object]]:
    return {s["name"]: s for s in api.get("/api/v1/sites", headers=who).json()}


def test_a_heartbeat_is_recorded_and_an_unseen_site_goes_offline(
    api: TestClient, kits: dict[str, Kit], clock: StepClock
) -> None:
    gw, alice = bearer(api, kits["site-a"]), bearer(api, kits["alice"])
    publish(api, kits)
    poll(api, gw, tasks_in_flight=2)
    site = sites(api, alice)["site-a"]
    assert (site["org"], site["version"], site["online"], site["tasks_in_flight"]) == (
        "hospital-a",
        "0.1.0",
        True,
        2,
    )
    assert site["offline_after_s"] == 35.0  # the longest poll (25 s) and a 10 s margin
    dataset = api.get("/api/v1/datasets", headers=alice).json()[0]
    assert dataset["site_offline_since"] is None

    seen = clock.now
    clock.now += timedelta(seconds=34)
    assert sites(api, alice)["site-a"]["online"] is True
    clock.now += timedelta(seconds=2)
    assert sites(api, alice)["site-a"]["online"] is False
    (dataset,) = api.get("/api/v1/datasets", headers=alice).json()
    assert datetime.fromisoformat(dataset["site_offline_since"]) == seen
    one = api.get("/api/v1/datasets/site-a/patients", headers=alice).json()
    assert one["site_offline_since"] == dataset["site_offline_since"]

    # A heartbeat on its own (a gateway busy with a task) brings it back.
    r = api.post("/api/v1/gateway/heartbeat", json={"version": "0.1.1", "tasks_in_flight": 1}, headers=gw)
    assert r.status_code == 200, r.text
    site = sites(api, alice)["site-a"]
    assert (site["version"], site["online"], site["tasks_in_flight"]) == ("0.1.1", True, 1)


def test_an_open_job_says_which_offline_site_it_waits_for(
    api: TestClient, kits: dict[str, Kit], clock: StepClock
) -> None:
    gw, alice = bearer(api, kits["site-a"]), bearer(api, kits["alice"])
    publish(api, kits)
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}
    spec_id = api.post("/api/v1/specs", json=spec, headers=alice).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=alice)
    task = poll(api, gw)["task"]
    assert isinstance(task, dict)
    digest = result_digest("done", {"ok": True}, None)
    upload = {"attempt": 1, "status": "done", "result": {"ok": True}, "digest": digest}
    assert (
        api.post(f"/api/v1/gateway/tasks/{task['task_id']}/result", json=upload, headers=gw).status_code
        == 200
    )
    job = api.post("/api/v1/jobs", json={"spec_id": spec_id, "params": {"columns": ["age"]}}, headers=alice)
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    assert api.get(f"/api/v1/jobs/{job_id}", headers=alice).json()["waiting"] == []

    clock.now += timedelta(seconds=40)
    waiting = api.get(f"/api/v1/jobs/{job_id}", headers=alice).json()["waiting"]
    since = (clock.now - timedelta(seconds=40)).strftime("%Y-%m-%d %H:%M")
    assert waiting == [f"waiting for site-a, offline since {since} UTC"]


def test_a_malformed_heartbeat_is_refused_and_changes_nothing(api: TestClient, kits: dict[str, Kit]) -> None:
    gw, alice = bearer(api, kits["site-a"]), bearer(api, kits["alice"])
    poll(api, gw, tasks_in_flight=3)
    for bad, field in (({"tasks_in_flight": -1}, "tasks_in_flight"), ({"version": "1.0 ; rm"}, "version")):
        body = {"version": "0.1.0", "tasks_in_flight": 0} | bad
        r = api.post("/api/v1/gateway/heartbeat", json=body, headers=gw)
        assert r.status_code == 400 and field in r.json()["detail"], r.text
    assert sites(api, alice)["site-a"]["tasks_in_flight"] == 3
    # Only gateways send heartbeats.
    r = api.post("/api/v1/gateway/heartbeat", json={"version": "0.1.0", "tasks_in_flight": 0}, headers=alice)
    assert r.status_code == 403


@pytest.mark.parametrize("sign_of_life", ["heartbeat", "standing"])
def test_a_busy_gateway_keeps_its_lease_past_its_expiry_while_it_says_it_works(
    api: TestClient, kits: dict[str, Kit], clock: StepClock, sign_of_life: str
) -> None:
    """The lease (300 s of wall time and a 60 s margin) runs out while the task runs; the gateway's
    heartbeats (or its standing questions) extend it, so its next poll holding the task reclaims
    nothing and its result of attempt 1 is taken: the task is computed once."""
    gw, alice = bearer(api, kits["site-a"]), bearer(api, kits["alice"])
    publish(api, kits)
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}
    spec_id = api.post("/api/v1/specs", json=spec, headers=alice).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=alice)
    task = poll(api, gw)["task"]
    assert isinstance(task, dict) and task["attempt"] == 1
    task_id = task["task_id"]
    for _ in range(30):  # 30 x 20 s: far past the lease's 360 s
        clock.now += timedelta(seconds=20)
        if sign_of_life == "heartbeat":
            beat = {"version": "0.1.0", "tasks_in_flight": 1}
            r = api.post("/api/v1/gateway/heartbeat", json=beat, headers=gw)
        else:
            r = api.get(f"/api/v1/gateway/tasks/{task_id}", headers=gw)
        assert r.status_code == 200, r.text
    body = {"wait": 0, "held": [task_id], "heartbeat": {"version": "0.1.0", "tasks_in_flight": 1}}
    again = api.post("/api/v1/gateway/tasks/next", json=body, headers=gw).json()
    assert again["task"] is None, "the task was reclaimed and leased again"
    digest = result_digest("done", {"ok": True}, None)
    upload = {"attempt": 1, "status": "done", "result": {"ok": True}, "digest": digest}
    r = api.post(f"/api/v1/gateway/tasks/{task_id}/result", json=upload, headers=gw)
    assert r.status_code == 200, r.text


def test_a_silent_gateway_loses_its_expired_lease(
    api: TestClient, kits: dict[str, Kit], clock: StepClock
) -> None:
    gw, alice = bearer(api, kits["site-a"]), bearer(api, kits["alice"])
    publish(api, kits)
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}
    spec_id = api.post("/api/v1/specs", json=spec, headers=alice).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=alice)
    task = poll(api, gw)["task"]
    assert isinstance(task, dict)
    clock.now += timedelta(seconds=361)
    body = {"wait": 0, "held": [task["task_id"]], "heartbeat": {"version": "0.1.0", "tasks_in_flight": 1}}
    again = api.post("/api/v1/gateway/tasks/next", json=body, headers=gw).json()["task"]
    assert again is not None and again["task_id"] == task["task_id"] and again["attempt"] == 2
