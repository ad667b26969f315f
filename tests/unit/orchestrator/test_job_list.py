"""The job list and job cancellation over the API, in process: who sees which jobs, the filters, pages
that neither repeat nor skip a job, clear 4xx refusals; a cancelled job's running task is told to stop
and no result of it is accepted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from custos.core.clock import utcnow
from custos.core.wire import result_digest
from custos.orchestrator.services.job_list import CURSOR_PATTERN
from custos.pki.kit import Kit
from custos.policy.signing import sign_policy
from custos.testing.inprocess import Person, bearer, orchestrator_in_process, provision_people

POLICY = """
dataset: patients
grants:
  - orgs: [university]
    models: ["stats@>=1.0,<2"]
    columns: [age]
min_count: 10
"""
SCHEMA = {"columns": [{"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 100}]}
PARAMS = {"columns": ["age"], "statistics": ["count"]}


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    people: list[Person] = [
        ("site-a", "gateway", "hospital-a", None),
        ("admin-a", "user", "hospital-a", "org_admin"),
        ("alice", "user", "university", "lead_researcher"),
        ("bob", "user", "university", "lead_researcher"),
        ("uadmin", "user", "university", "org_admin"),
        ("mallory", "user", "elsewhere", "lead_researcher"),
        ("root", "user", "project", "project_admin"),
    ]
    return provision_people(tmp_path_factory.mktemp("kits") / "project", "jobs", people)


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path) -> Iterator[TestClient]:
    with orchestrator_in_process(kits, tmp_path) as client:
        yield client


@pytest.fixture
def heads(api: TestClient, kits: dict[str, Kit]) -> dict[str, dict[str, str]]:
    return {name: bearer(api, kits[name]) for name in ("site-a", "alice", "bob", "uadmin", "mallory", "root")}


def active_spec(api: TestClient, kits: dict[str, Kit], heads: dict[str, dict[str, str]]) -> str:
    admin = kits["admin-a"]
    signed = sign_policy(
        POLICY, "site-a/patients", key=admin.private_key, certificate=admin.certificate, now=utcnow()
    )
    dataset = {"name": "patients", "schema": SCHEMA, "row_count": 1000, "mock_arrow_b64": ""}
    body = {"datasets": [{**dataset, "policy": signed.model_dump(mode="json")}]}
    assert api.post("/api/v1/gateway/publish", json=body, headers=heads["site-a"]).status_code == 200
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}
    spec_id: str = api.post("/api/v1/specs", json=spec, headers=heads["alice"]).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=heads["alice"])
    finish(api, heads, next_task(api, heads), {"validated": True})
    return spec_id


def next_task(api: TestClient, heads: dict[str, dict[str, str]]) -> dict[str, Any]:
    task: dict[str, Any] = api.get("/api/v1/gateway/tasks/next?wait=0", headers=heads["site-a"]).json()[
        "task"
    ]
    return task


def finish(api: TestClient, heads: dict[str, dict[str, str]], task: dict[str, Any], result: Any) -> Any:
    upload = {"attempt": task["attempt"], "status": "done", "result": result}
    upload["digest"] = result_digest("done", result, None)
    return api.post(f"/api/v1/gateway/tasks/{task['task_id']}/result", json=upload, headers=heads["site-a"])


def submit(api: TestClient, heads: dict[str, dict[str, str]], who: str, spec_id: str) -> str:
    response = api.post("/api/v1/jobs", json={"spec_id": spec_id, "params": PARAMS}, headers=heads[who])
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def listed(api: TestClient, heads: dict[str, dict[str, str]], who: str, **query: Any) -> list[str]:
    response = api.get("/api/v1/jobs", params=query, headers=heads[who])
    assert response.status_code == 200, response.text
    return [j["id"] for j in response.json()["jobs"]]


def test_researchers_list_their_own_jobs_admins_their_org_s_newest_first(
    api: TestClient, kits: dict[str, Kit], heads: dict[str, dict[str, str]]
) -> None:
    spec_id = active_spec(api, kits, heads)
    # The university's org admin may submit too (job.submit: org).
    alices = [submit(api, heads, "alice", spec_id) for _ in range(3)]
    bobs = [submit(api, heads, "uadmin", spec_id)]

    assert listed(api, heads, "alice") == alices[::-1]
    assert listed(api, heads, "bob") == []
    assert listed(api, heads, "mallory") == []
    assert listed(api, heads, "uadmin") == (alices + bobs)[::-1]
    assert listed(api, heads, "root") == (alices + bobs)[::-1]
    page = api.get("/api/v1/jobs", headers=heads["alice"]).json()
    assert page["next_cursor"] is None
    assert set(page["jobs"][0]) == {
        "id", "spec_id", "model", "state", "round", "reason", "submitter", "org", "created_at", "finished_at",
    }  # fmt: skip


def test_filters_by_state_spec_and_time(
    api: TestClient, kits: dict[str, Kit], heads: dict[str, dict[str, str]]
) -> None:
    spec_id = active_spec(api, kits, heads)
    first, second = submit(api, heads, "alice", spec_id), submit(api, heads, "alice", spec_id)
    assert api.post(f"/api/v1/jobs/{first}/cancel", headers=heads["alice"]).json()["state"] == "cancelled"

    assert listed(api, heads, "alice", state="cancelled") == [first]
    assert listed(api, heads, "alice", state=["cancelled", "running"]) == [second, first]
    assert listed(api, heads, "alice", state="running", spec=spec_id) == [second]
    assert listed(api, heads, "alice", spec="spec_nonesuch") == []
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert listed(api, heads, "alice", since=future) == []
    past = (utcnow() - timedelta(hours=1)).isoformat()
    assert listed(api, heads, "alice", since=past) == [second, first]


def test_pages_neither_repeat_nor_skip_a_job_submitted_meanwhile(
    api: TestClient, kits: dict[str, Kit], heads: dict[str, dict[str, str]]
) -> None:
    spec_id = active_spec(api, kits, heads)
    jobs = [submit(api, heads, "alice", spec_id) for _ in range(5)]
    seen: list[str] = []
    cursor = None
    for step in range(10):
        query: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/jobs", params=query, headers=heads["alice"]).json()
        seen += [j["id"] for j in page["jobs"]]
        if step == 0:
            submit(api, heads, "alice", spec_id)  # newer than every page: it never shows up in this walk
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == jobs[::-1]


def test_any_cursor_the_document_allows_is_a_position_to_continue_from(
    api: TestClient, kits: dict[str, Kit], heads: dict[str, dict[str, str]]
) -> None:
    """A cursor is `MICROSECONDS.ID`, all of it stated by the document's pattern (A54): one no page
    returned is still a position, before every job or after them all, never a refusal."""
    spec_id = active_spec(api, kits, heads)
    jobs = [submit(api, heads, "alice", spec_id) for _ in range(3)]
    first = api.get("/api/v1/jobs", params={"limit": 1}, headers=heads["alice"]).json()
    assert re.fullmatch(CURSOR_PATTERN, first["next_cursor"])
    assert first["next_cursor"].endswith(f".{jobs[-1]}")
    assert listed(api, heads, "alice", cursor="99999999999999999.z") == jobs[::-1]
    assert listed(api, heads, "alice", cursor="0.a") == []


def test_bad_list_queries_get_a_4xx_with_the_reason(
    api: TestClient, heads: dict[str, dict[str, str]]
) -> None:
    for query, status, words in (
        ({"cursor": "not-a-cursor"}, 400, "is not one a job list returned"),
        ({"cursor": "1.job_1.2"}, 400, "continue from a page's next_cursor"),
        ({"since": "2026-01-01T00:00:00"}, 400, "has no time zone"),
        ({"state": "sleeping"}, 400, "state.0: Input should be"),
        ({"limit": 0}, 400, "limit"),
    ):
        response = api.get("/api/v1/jobs", params=query, headers=heads["alice"])
        assert response.status_code == status, response.text
        assert words in str(response.json()["detail"])


def test_a_cancelled_job_s_running_task_is_told_to_stop_and_its_result_refused(
    api: TestClient, kits: dict[str, Kit], heads: dict[str, dict[str, str]]
) -> None:
    spec_id = active_spec(api, kits, heads)
    job_id = submit(api, heads, "alice", spec_id)
    task = next_task(api, heads)
    api.post(f"/api/v1/gateway/tasks/{task['task_id']}/start", json={"attempt": 1}, headers=heads["site-a"])
    standing = api.get(f"/api/v1/gateway/tasks/{task['task_id']}", headers=heads["site-a"]).json()
    assert (standing["state"], standing["stop"]) == ("running", None)
    assert api.post(f"/api/v1/jobs/{job_id}/cancel", headers=heads["bob"]).status_code == 403  # lead: self
    assert api.post(f"/api/v1/jobs/{job_id}/cancel", headers=heads["mallory"]).status_code == 404

    cancelled = api.post(f"/api/v1/jobs/{job_id}/cancel", headers=heads["alice"]).json()

    assert cancelled["state"] == "cancelled" and cancelled["reason"] == "cancelled by alice"
    standing = api.get(f"/api/v1/gateway/tasks/{task['task_id']}", headers=heads["site-a"]).json()
    assert standing["stop"] == "the job was cancelled"
    late = finish(api, heads, task, {"count": 1000})
    assert late.status_code == 409
    assert late.json()["detail"] == f"job {job_id} was cancelled; no result of it is accepted"
    again = api.post(f"/api/v1/jobs/{job_id}/cancel", headers=heads["alice"])
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


def test_a_poll_tells_the_gateway_which_of_its_runtimes_jobs_have_ended(
    api: TestClient, kits: dict[str, Kit], heads: dict[str, dict[str, str]]
) -> None:
    spec_id = active_spec(api, kits, heads)
    job_id = submit(api, heads, "alice", spec_id)
    poll = {"wait": 0, "running": [job_id, "job_0000000000000000"]}
    first = api.get("/api/v1/gateway/tasks/next", params=poll, headers=heads["site-a"]).json()
    assert first["task"]["job_id"] == job_id and first["ended_jobs"] == []

    api.post(f"/api/v1/jobs/{job_id}/cancel", headers=heads["alice"])

    after = api.get("/api/v1/gateway/tasks/next", params=poll, headers=heads["site-a"]).json()
    assert after == {"task": None, "ended_jobs": [job_id]}
