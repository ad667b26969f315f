"""B15 (release of the full log): a failed custom code task's full log leaves the gateway only when a
custodian releases it, through the real app in process.

Only a release reviewer (org admin) of the gateway's org may release a log, and never the job's author;
a researcher, or an org admin of another org, is refused (403, audited) and nothing is stored. A
released log is read by whoever may download the job's result; to a researcher of another org the
job is missing (404). The log is bounded, and a released log is never replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from custos.audit import read_events
from custos.core.clock import utcnow
from custos.core.wire import MAX_CODE_LOG_BYTES, result_digest
from custos.pki.kit import Kit
from custos.policy.signing import sign_policy
from custos.testing.inprocess import bearer

SCHEMA = {"columns": [{"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 100}]}
PARAMS = {"columns": ["age"], "statistics": ["count"]}
PEOPLE = [
    ("site-a", "gateway", "hospital-a", None),
    ("site-b", "gateway", "hospital-b", None),
    ("alice", "user", "university", "lead_researcher"),
    ("max", "user", "university", "member_researcher"),
    ("rita", "user", "elsewhere", "lead_researcher"),
    ("admin-a", "user", "hospital-a", "org_admin"),
    ("admin-a2", "user", "hospital-a", "org_admin"),
    ("admin-b", "user", "hospital-b", "org_admin"),
]
POLICY = """
dataset: patients
grants:
  - orgs: [university, hospital-a]
    models: ["stats@>=1.0,<2"]
    columns: [age]
"""
FULL_LOG = (
    "Traceback (most recent call last):\n"
    '  File "<custom code>", line 4, in error_with_data\n'
    "ValueError: bad row 'a-17' with bmi 31.5 in region north\n"
)


def auth(api: TestClient, kits: dict[str, Kit], name: str) -> dict[str, str]:
    return bearer(api, kits[name])


def failed_job(api: TestClient, kits: dict[str, Kit], owner: str) -> tuple[str, str]:
    """A job of `owner` whose task failed at site-a with a redacted error; (job id, task id)."""
    for gateway in ("site-a", "site-b"):
        r = api.post("/api/v1/gateway/publish", json={"datasets": []}, headers=auth(api, kits, gateway))
        assert r.status_code == 200, r.text
    dataset = {"name": "patients", "schema": SCHEMA, "row_count": 100, "mock_arrow_b64": "", "policy": None}
    gw = auth(api, kits, "site-a")
    r = api.post("/api/v1/gateway/publish", json={"datasets": [dataset]}, headers=gw)
    assert r.status_code == 200, r.text
    kit = kits["admin-a"]
    signed = sign_policy(
        POLICY, "site-a/patients", key=kit.private_key, certificate=kit.certificate, now=utcnow()
    )
    r = api.put(
        "/api/v1/datasets/site-a/patients/policy",
        json=signed.model_dump(mode="json"),
        headers=auth(api, kits, "admin-a"),
    )
    assert r.status_code == 200, r.text
    who = auth(api, kits, owner)
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}
    spec_id = api.post("/api/v1/specs", json=spec, headers=who).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=who)
    task = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
    upload(api, gw, task, "done", {"validated": True})
    r = api.post("/api/v1/jobs", json={"spec_id": spec_id, "params": PARAMS}, headers=who)
    assert r.status_code == 201, r.text
    task = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
    upload(api, gw, task, "failed", None, "Exception: bad row '…' (data values redacted)")
    return str(r.json()["id"]), str(task["task_id"])


def upload(
    api: TestClient,
    gw: dict[str, str],
    task: dict[str, Any],
    status: str,
    result: dict[str, Any] | None,
    error: str | None = None,
) -> None:
    body = {"attempt": task["attempt"], "status": status, "result": result, "error": error}
    body["digest"] = result_digest(status, result, error)
    r = api.post(f"/api/v1/gateway/tasks/{task['task_id']}/result", json=body, headers=gw)
    assert r.status_code == 200, r.text


def release(api: TestClient, kits: dict[str, Kit], who: str, job_id: str, task: str, **changes: Any) -> Any:
    body = {"gateway": "site-a", "task_id": task, "attempt": 1, "log": FULL_LOG} | changes
    return api.post(f"/api/v1/jobs/{job_id}/logs", json=body, headers=auth(api, kits, who))


def logs_of(api: TestClient, kits: dict[str, Kit], who: str, job_id: str) -> Any:
    return api.get(f"/api/v1/jobs/{job_id}/logs", headers=auth(api, kits, who))


def test_b15_only_a_custodian_of_the_gateways_org_releases_a_log_and_each_refusal_is_audited(
    api: TestClient, kits: dict[str, Kit], audit_path: Path
) -> None:
    job_id, task_id = failed_job(api, kits, "alice")
    member = release(api, kits, "max", job_id, task_id)
    assert member.status_code == 403 and "may not perform release.review" in member.json()["detail"]
    author = release(api, kits, "alice", job_id, task_id)  # the researcher releases nothing to herself
    assert author.status_code == 403
    other_org = release(api, kits, "admin-b", job_id, task_id)
    assert other_org.status_code == 403
    assert other_org.json()["detail"] == (
        "org_admin admin-b of hospital-b may not release logs of gateway site-a: "
        "only a release reviewer of hospital-a may"
    )
    # The same refusal for a job that does not exist: ids cannot be probed.
    assert release(api, kits, "admin-b", "job_0000000000000000", task_id).json() == other_org.json()
    denied = [e.user for e in read_events(audit_path) if e.action == "denied"]
    assert (denied.count("max"), denied.count("alice"), denied.count("admin-b")) == (1, 1, 2)
    assert logs_of(api, kits, "alice", job_id).json() == []  # nothing was stored

    r = release(api, kits, "admin-a", job_id, task_id)
    assert r.status_code == 201, r.text
    assert (r.json()["released_by"], r.json()["dataset"], r.json()["log"]) == (
        "admin-a",
        "patients",
        FULL_LOG,
    )
    released = [e for e in read_events(audit_path) if e.action == "log_released"]
    assert [(e.user, e.job) for e in released] == [("admin-a", job_id)]
    assert f"site-a/patients {task_id} attempt 1" in released[0].message


def test_b15_the_author_never_releases_the_log_of_their_own_job(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    job_id, task_id = failed_job(api, kits, "admin-a")
    r = release(api, kits, "admin-a", job_id, task_id)
    assert r.status_code == 403
    assert (
        r.json()["detail"] == f"admin-a submitted job {job_id}: the author of a job never releases its logs"
    )
    assert release(api, kits, "admin-a2", job_id, task_id).status_code == 201


def test_b15_a_released_log_is_read_by_the_jobs_org_and_missing_to_another(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    job_id, task_id = failed_job(api, kits, "alice")
    assert release(api, kits, "admin-a", job_id, task_id).status_code == 201
    read = logs_of(api, kits, "alice", job_id)
    assert read.status_code == 200 and [log["log"] for log in read.json()] == [FULL_LOG]
    for outsider in ("rita", "admin-b"):
        r = logs_of(api, kits, outsider, job_id)
        assert r.status_code == 404 and r.json()["detail"] == f"unknown job {job_id}"
    assert logs_of(api, kits, "max", job_id).status_code == 403  # a member downloads no result


def test_b15_a_log_is_bounded_names_a_task_of_that_gateway_and_is_never_replaced(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    job_id, task_id = failed_job(api, kits, "alice")
    too_big = release(api, kits, "admin-a", job_id, task_id, log="é" * (MAX_CODE_LOG_BYTES // 2 + 1))
    assert too_big.status_code == 400
    assert f"over the cap of {MAX_CODE_LOG_BYTES}" in too_big.json()["detail"]
    # Another task, a later attempt, another gateway (released by its own custodian): none ran there.
    for who, changes in (
        ("admin-a", {"task_id": "task_0000000000000000"}),
        ("admin-a", {"attempt": 2}),
        ("admin-b", {"gateway": "site-b"}),
    ):
        r = release(api, kits, who, job_id, task_id, **changes)
        assert r.status_code == 404, r.text
        assert "ran no task" in r.json()["detail"]
    assert logs_of(api, kits, "alice", job_id).json() == []

    first = release(api, kits, "admin-a", job_id, task_id)
    again = release(api, kits, "admin-a2", job_id, task_id)  # the same log: no change
    assert again.status_code == 201 and again.json() == first.json()
    other = release(api, kits, "admin-a2", job_id, task_id, log="something else")
    assert other.status_code == 409 and "a released log is never replaced" in other.json()["detail"]
    assert [log["log"] for log in logs_of(api, kits, "alice", job_id).json()] == [FULL_LOG]
