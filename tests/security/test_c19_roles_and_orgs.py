"""C19, C23, C24: roles and orgs at the orchestrator's API, through the real app in process.

A member researcher cannot write policies, create specs, submit or cancel, and each refusal is a 403
that lands in the audit trail. Org B cannot read, cancel or download org A's job by id (404, so ids
cannot be probed). The audit trail is readable over the API by the roles the table allows, each
seeing only what it may.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from custos.audit import read_events
from custos.core.clock import utcnow
from custos.core.wire import result_digest
from custos.pki.kit import Kit
from custos.policy.signing import sign_policy
from custos.testing.inprocess import bearer

POLICY = """
dataset: patients
grants:
  - orgs: [university, elsewhere]
    models: ["stats@>=1.0,<2"]
    columns: [age]
"""
SCHEMA = {"columns": [{"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 100}]}
PEOPLE = [
    ("site-a", "gateway", "hospital-a", None),
    ("alice", "user", "university", "lead_researcher"),
    ("bob", "user", "university", "lead_researcher"),
    ("max", "user", "university", "member_researcher"),
    ("mallory", "user", "elsewhere", "lead_researcher"),
    ("admin-a", "user", "hospital-a", "org_admin"),
    ("admin-u", "user", "university", "org_admin"),
    ("root", "user", "operator", "project_admin"),
]


def auth(api: TestClient, kits: dict[str, Kit], name: str) -> dict[str, str]:
    return bearer(api, kits[name])


def signed(kits: dict[str, Kit], signer: str = "admin-a", text: str = POLICY) -> dict[str, object]:
    kit = kits[signer]
    policy = sign_policy(
        text, "site-a/patients", key=kit.private_key, certificate=kit.certificate, now=utcnow()
    )
    return policy.model_dump(mode="json")


def publish(api: TestClient, kits: dict[str, Kit]) -> None:
    dataset = {"name": "patients", "schema": SCHEMA, "row_count": 100, "mock_arrow_b64": "", "policy": None}
    r = api.post("/api/v1/gateway/publish", json={"datasets": [dataset]}, headers=auth(api, kits, "site-a"))
    assert r.status_code == 200, r.text
    r = api.put(
        "/api/v1/datasets/site-a/patients/policy", json=signed(kits), headers=auth(api, kits, "admin-a")
    )
    assert r.status_code == 200, r.text


def job_of(api: TestClient, kits: dict[str, Kit], owner: str) -> str:
    """A running job of `owner`: spec created, activated by the gateway, job submitted."""
    who, gw = auth(api, kits, owner), auth(api, kits, "site-a")
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}
    spec_id = api.post("/api/v1/specs", json=spec, headers=who).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=who)
    ok = {"validated": True}
    upload = {"attempt": 1, "status": "done", "result": ok, "digest": result_digest("done", ok, None)}
    held: list[str] = []
    for _ in range(5):  # other jobs' compute tasks may come first: the gateway keeps holding them
        task = api.get("/api/v1/gateway/tasks/next", params={"wait": 0, "held": held}, headers=gw).json()[
            "task"
        ]
        held.append(task["task_id"])
        if task["kind"] == "prepare":
            api.post(f"/api/v1/gateway/tasks/{task['task_id']}/result", json=upload, headers=gw)
            break
    params = {"columns": ["age"], "statistics": ["count"]}
    r = api.post("/api/v1/jobs", json={"spec_id": spec_id, "params": params}, headers=who)
    assert r.status_code == 201, r.text
    job_id: str = r.json()["id"]
    return job_id


def denied_events(audit_path: Path, user: str) -> list[str]:
    return [e.message for e in read_events(audit_path) if e.action == "denied" and e.user == user]


def test_c19_member_researcher_is_refused_and_each_refusal_is_audited(
    api: TestClient, kits: dict[str, Kit], audit_path: Path
) -> None:
    publish(api, kits)
    member = auth(api, kits, "max")
    job_id = job_of(api, kits, "alice")
    attempts = [
        api.put("/api/v1/datasets/site-a/patients/policy", json=signed(kits), headers=member),
        api.post(
            "/api/v1/specs",
            json={"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]},
            headers=member,
        ),
        api.post(f"/api/v1/jobs/{job_id}/cancel", headers=member),
        api.get(f"/api/v1/jobs/{job_id}/result", headers=member),
        api.get("/api/v1/audit", headers=member),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert all("member_researcher" in r.json()["detail"] for r in attempts)
    assert len(denied_events(audit_path, "max")) == len(attempts)
    # but a member may follow the org's job
    assert api.get(f"/api/v1/jobs/{job_id}", headers=member).status_code == 200


def test_c23_another_org_cannot_read_cancel_or_download_a_job_by_id(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    publish(api, kits)
    job_id = job_of(api, kits, "alice")
    mallory = auth(api, kits, "mallory")
    for method, path in (
        ("GET", f"/api/v1/jobs/{job_id}"),
        ("POST", f"/api/v1/jobs/{job_id}/cancel"),
        ("GET", f"/api/v1/jobs/{job_id}/result"),
    ):
        r = api.request(method, path, headers=mallory)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json() == {"detail": f"unknown job {job_id}"}
    alice = auth(api, kits, "alice")
    assert api.get(f"/api/v1/jobs/{job_id}", headers=alice).json()["state"] == "running"


def test_a_lead_cancels_only_its_own_job_and_an_org_admin_any_of_its_org(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    publish(api, kits)
    first, second = job_of(api, kits, "alice"), job_of(api, kits, "alice")
    r = api.post(f"/api/v1/jobs/{first}/cancel", headers=auth(api, kits, "bob"))
    assert r.status_code == 403  # same org, not the submitter
    r = api.post(f"/api/v1/jobs/{first}/cancel", headers=auth(api, kits, "alice"))
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert all(t["state"] == "failed" for t in r.json()["tasks"])
    r = api.post(f"/api/v1/jobs/{second}/cancel", headers=auth(api, kits, "admin-u"))
    assert r.status_code == 200 and r.json()["reason"] == "cancelled by admin-u"
    assert api.post(f"/api/v1/jobs/{second}/cancel", headers=auth(api, kits, "alice")).status_code == 409


def test_the_audit_trail_over_the_api_shows_each_role_what_it_may_see(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    publish(api, kits)
    job_id = job_of(api, kits, "alice")
    everything = api.get("/api/v1/audit", headers=auth(api, kits, "root")).json()
    assert {"site-a", "alice", "admin-a"} <= {e["user"] for e in everything}
    of_job = api.get("/api/v1/audit", params={"job": job_id}, headers=auth(api, kits, "root")).json()
    assert of_job and {e["job"] for e in of_job} == {job_id}
    hospital = api.get("/api/v1/audit", headers=auth(api, kits, "admin-a")).json()
    assert hospital and {e["user"] for e in hospital} <= {"site-a", "admin-a"}
    r = api.get("/api/v1/audit", headers=auth(api, kits, "alice"))
    assert r.status_code == 403


def test_c27_identity_in_the_body_is_not_taken(api: TestClient, kits: dict[str, Kit]) -> None:
    publish(api, kits)
    spec = {
        "name": "s",
        "model": "stats@1.0.0",
        "datasets": ["site-a/patients"],
        "columns": ["age"],
        "owner": "admin-u",
        "org": "hospital-a",
    }
    r = api.post("/api/v1/specs", json=spec, headers=auth(api, kits, "alice"))
    assert r.status_code == 400 and "owner" in r.json()["detail"]
    forged = {"Authorization": "Bearer eyJyb2xlIjoicHJvamVjdF9hZG1pbiJ9.forged"}
    assert api.get("/api/v1/audit", headers=forged).status_code == 401
