"""The orchestrator's HTTP API in process (no TLS here; the integration tests add it): sign-in by
proof of key possession, role separation, clear 4xx errors, and idempotent task results."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from custos.core.clock import utcnow
from custos.core.errors import AuthenticationFailed
from custos.core.wire import auth_message, result_digest
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.certs import certificate_pem, fingerprint, load_certificate_pem
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.signin import sign_in
from custos.pki.verify import sign
from custos.policy.signing import sign_policy

POLICY = """
dataset: patients
grants:
  - orgs: [university]
    models: ["stats@>=1.0,<2"]
    columns: [age, sex]
min_count: 10
"""

SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 100},
        {"name": "sex", "type": "string", "kind": "categorical", "categories": ["F", "M"]},
        {"name": "postcode", "type": "string", "kind": "other"},
    ]
}


def _project(name: str) -> ProjectSpec:
    return ProjectSpec.model_validate(
        {
            "name": name,
            "participants": [
                {"name": "site-a", "type": "gateway", "org": "hospital-a"},
                {"name": "site-b", "type": "gateway", "org": "hospital-b"},
                {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
                {"name": "mallory", "type": "user", "org": "elsewhere", "role": "lead_researcher"},
                {"name": "admin-a", "type": "user", "org": "hospital-a", "role": "org_admin"},
            ],
        }
    )


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    root = tmp_path_factory.mktemp("kits")
    provision(_project("api-test"), root / "project")
    provision(_project("other-project"), root / "foreign")
    kits = {p.name: load_kit(p) for p in (root / "project").iterdir() if (p / "config.json").exists()}
    kits["foreign-alice"] = load_kit(root / "foreign" / "alice")
    return kits


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path) -> Iterator[TestClient]:
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        audit_path=tmp_path / "audit.log",
        max_body_bytes=1 << 20,
    )
    app = create_app(settings, kits["orchestrator"].root_certificate)
    with TestClient(app) as client:
        yield client


def bearer(api: TestClient, kit: Kit) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_in(api, kit).token}"}


def publish(api: TestClient, kits: dict[str, Kit], policy: str | None = POLICY) -> None:
    """site-a publishes its patients table with `policy`, signed by hospital-a's org admin."""
    admin = kits["admin-a"]
    signed = (
        sign_policy(
            policy, "site-a/patients", key=admin.private_key, certificate=admin.certificate, now=utcnow()
        ).model_dump(mode="json")
        if policy
        else None
    )
    body = {
        "datasets": [
            {
                "name": "patients",
                "schema": SCHEMA,
                "row_count": 1000,
                "mock_arrow_b64": "",
                "policy": signed,
            }
        ]
    }
    r = api.post("/api/v1/gateway/publish", json=body, headers=bearer(api, kits["site-a"]))
    assert r.status_code == 200, r.text


def test_identity_comes_from_the_certificate(api: TestClient, kits: dict[str, Kit]) -> None:
    r = api.get("/api/v1/me", headers=bearer(api, kits["alice"]))
    assert r.json() == {
        "name": "alice",
        "org": "university",
        "role": "lead_researcher",
        "fingerprint": fingerprint(kits["alice"].certificate),
    }


def test_e38_certificate_of_another_ca_is_refused(api: TestClient, kits: dict[str, Kit]) -> None:
    pem = certificate_pem(kits["foreign-alice"].certificate)
    r = api.post("/api/v1/auth/challenge", json={"certificate_pem": pem})
    assert r.status_code == 401
    assert "not signed by this project's CA" in r.json()["detail"]


def test_signature_by_another_key_is_refused_and_a_challenge_is_single_use(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    victim, thief = kits["site-b"], kits["site-a"]
    pem = certificate_pem(victim.certificate)
    ch = api.post("/api/v1/auth/challenge", json={"certificate_pem": pem}).json()
    message = auth_message(ch["challenge_id"], ch["nonce"], fingerprint(victim.certificate))
    forged = base64.b64encode(sign(thief.private_key, message)).decode()
    body = {"challenge_id": ch["challenge_id"], "certificate_pem": pem, "signature": forged}
    r = api.post("/api/v1/auth/token", json=body)
    assert r.status_code == 401
    genuine = base64.b64encode(sign(victim.private_key, message)).decode()
    r = api.post("/api/v1/auth/token", json=body | {"signature": genuine})
    assert r.status_code == 401, "a challenge must not be usable twice"
    assert "unknown, used or expired" in r.json()["detail"]


def test_routes_are_separated_by_participant_kind(api: TestClient, kits: dict[str, Kit]) -> None:
    assert api.get("/api/v1/gateway/tasks/next?wait=0", headers=bearer(api, kits["alice"])).status_code == 403
    assert api.get("/api/v1/datasets", headers=bearer(api, kits["site-a"])).status_code == 403


def test_spec_refusals_are_clear_and_write_nothing(api: TestClient, kits: dict[str, Kit]) -> None:
    publish(api, kits)
    alice = bearer(api, kits["alice"])
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}
    cases = [
        (spec | {"columns": ["agee"]}, 400, "unknown column 'agee'"),
        (spec | {"datasets": ["site-z/patients"]}, 404, "unknown dataset site-z/patients"),
        (spec | {"model": "stats@9.9.9"}, 404, "unknown model stats@9.9.9"),
        (spec | {"model": "stats"}, 400, "name@version"),
        (spec | {"columns": ["age", "postcode"]}, 403, "does not grant column(s) postcode"),
        (spec | {"datasets": []}, 400, "datasets"),
        (spec | {"surprise": 1}, 400, "surprise"),
    ]
    for body, status, detail in cases:
        r = api.post("/api/v1/specs", json=body, headers=alice)
        assert r.status_code == status, (body, r.text)
        assert detail in r.json()["detail"]
    assert api.get("/api/v1/specs", headers=alice).json() == []
    mallory = bearer(api, kits["mallory"])
    r = api.post("/api/v1/specs", json=spec, headers=mallory)
    assert r.status_code == 403
    assert "grants nothing" in r.json()["detail"]


def test_unknown_ids_get_404_json(api: TestClient, kits: dict[str, Kit]) -> None:
    alice = bearer(api, kits["alice"])
    for path in ("/api/v1/specs/spec_nope", "/api/v1/jobs/job_nope", "/api/v1/jobs/job_nope/result"):
        r = api.get(path, headers=alice)
        assert r.status_code == 404
        assert "unknown" in r.json()["detail"]


def test_a2_oversized_body_is_refused(api: TestClient, kits: dict[str, Kit]) -> None:
    r = api.post("/api/v1/specs", content=b"{" + b" " * (2 << 20) + b"}", headers=bearer(api, kits["alice"]))
    assert r.status_code == 413
    assert "larger than" in r.json()["detail"]


def _activate(api: TestClient, kits: dict[str, Kit]) -> tuple[str, dict[str, str], dict[str, str]]:
    publish(api, kits)
    alice, gw = bearer(api, kits["alice"]), bearer(api, kits["site-a"])
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}
    spec_id = api.post("/api/v1/specs", json=spec, headers=alice).json()["id"]
    assert api.post(f"/api/v1/specs/{spec_id}/activate", headers=alice).json()["state"] == "activating"
    return spec_id, alice, gw


def test_activation_waits_for_the_gateway_and_records_its_refusal(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    spec_id, alice, gw = _activate(api, kits)
    task = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
    assert task["kind"] == "prepare"
    assert task["submitter"] == {"name": "alice", "org": "university", "role": "lead_researcher"}
    error = "the policy for site-a/patients does not allow model stats@1.0.0"
    upload = {
        "attempt": 1,
        "status": "failed",
        "error": error,
        "digest": result_digest("failed", None, error),
    }
    assert (
        api.post(f"/api/v1/gateway/tasks/{task['task_id']}/result", json=upload, headers=gw).status_code
        == 200
    )
    spec = api.get(f"/api/v1/specs/{spec_id}", headers=alice).json()
    assert spec["state"] == "failed"
    assert "site-a refused" in spec["reason"]


def test_result_upload_is_idempotent_on_attempt_and_digest(api: TestClient, kits: dict[str, Kit]) -> None:
    spec_id, alice, gw = _activate(api, kits)
    task = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
    url = f"/api/v1/gateway/tasks/{task['task_id']}/result"
    result = {"validated": True}
    upload = {"attempt": 1, "status": "done", "result": result, "digest": result_digest("done", result, None)}
    assert api.post(url, json=upload | {"digest": "0" * 64}, headers=gw).status_code == 400
    assert api.post(url, json=upload, headers=gw).json() == {"ok": True, "duplicate": False}
    assert api.post(url, json=upload, headers=gw).json() == {"ok": True, "duplicate": True}
    other = {"validated": False}
    changed = upload | {"result": other, "digest": result_digest("done", other, None)}
    assert api.post(url, json=changed, headers=gw).status_code == 409
    assert api.get(f"/api/v1/specs/{spec_id}", headers=alice).json()["state"] == "active"
    # another gateway cannot see or report this task
    other_gw = bearer(api, kits["site-b"])
    assert api.post(url, json=upload, headers=other_gw).status_code == 404


def test_a_result_journaled_at_an_earlier_attempt_is_taken_once(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    """The gateway stopped before its upload: the task comes back at attempt 2 (its poll does not hold
    it), and the gateway re-sends the result it journaled at attempt 1, the same digest."""
    spec_id, alice, gw = _activate(api, kits)
    task = api.get("/api/v1/gateway/tasks/next?wait=0&poll=1", headers=gw).json()["task"]
    assert task["attempt"] == 1
    again = api.get("/api/v1/gateway/tasks/next?wait=0&poll=2", headers=gw).json()["task"]
    assert (again["task_id"], again["attempt"]) == (task["task_id"], 2)
    url = f"/api/v1/gateway/tasks/{task['task_id']}/result"
    result = {"validated": True}
    journaled = {"status": "done", "result": result, "digest": result_digest("done", result, None)}
    assert api.post(url, json=journaled | {"attempt": 1}, headers=gw).status_code == 409  # stale
    assert api.post(url, json=journaled | {"attempt": 2}, headers=gw).json() == {
        "ok": True,
        "duplicate": False,
    }
    assert api.post(url, json=journaled | {"attempt": 1}, headers=gw).json() == {
        "ok": True,
        "duplicate": True,
    }
    other = {"validated": False}
    changed = {"status": "done", "result": other, "digest": result_digest("done", other, None)}
    assert api.post(url, json=changed | {"attempt": 2}, headers=gw).status_code == 409
    assert api.get(f"/api/v1/specs/{spec_id}", headers=alice).json()["state"] == "active"


def test_a_poll_numbered_before_the_gateway_s_newest_leases_nothing(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    _activate(api, kits)
    gw = bearer(api, kits["site-a"])
    assert (
        api.get("/api/v1/gateway/tasks/next?wait=0&poll=20&held=none", headers=gw).json()["task"] is not None
    )
    # The late poll 10 (holding nothing) neither takes back the task leased to poll 20 nor leases it.
    assert api.get("/api/v1/gateway/tasks/next?wait=0&poll=10", headers=gw).json() == {
        "task": None,
        "ended_jobs": [],
    }


def test_c23_other_org_cannot_read_a_spec_by_id(api: TestClient, kits: dict[str, Kit]) -> None:
    spec_id, _, _ = _activate(api, kits)
    r = api.get(f"/api/v1/specs/{spec_id}", headers=bearer(api, kits["mallory"]))
    assert r.status_code == 404


def test_certificate_pem_garbage_is_a_clear_401(api: TestClient) -> None:
    r = api.post("/api/v1/auth/challenge", json={"certificate_pem": "not a certificate"})
    assert r.status_code == 401
    assert "certificate" in r.json()["detail"]
    with pytest.raises(AuthenticationFailed):
        load_certificate_pem("garbage")


# --- leases: a silent gateway's task is retried, then fails ------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked_api(kits: dict[str, Kit], tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", audit_path=tmp_path / "audit.log", lease_margin_s=60
    )
    with TestClient(create_app(settings, kits["orchestrator"].root_certificate, clock)) as client:
        yield client


def test_an_expired_lease_is_retried_then_fails_the_spec(
    clocked_api: TestClient, kits: dict[str, Kit], clock: Clock
) -> None:
    api = clocked_api
    # Sign in first: tokens are short-lived on this clock too.
    alice, gw = bearer(api, kits["alice"]), bearer(api, kits["site-a"])
    publish(api, kits)
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}
    spec_id = api.post("/api/v1/specs", json=spec, headers=alice).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=alice)
    lease = timedelta(seconds=300 + 60 + 1)  # the spec's wall clock plus the lease margin
    attempts = []
    for _ in range(3):
        task = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
        attempts.append((task["task_id"], task["attempt"]))
        held = f"/api/v1/gateway/tasks/next?wait=0&held={task['task_id']}"
        assert api.get(held, headers=gw).json()["task"] is None, "leased"
        clock.now += lease
    assert [a for _, a in attempts] == [1, 2, 3]
    assert len({t for t, _ in attempts}) == 1
    # The gateway of attempt 1 comes back late: its result is refused.
    result = {"validated": True}
    late = {"attempt": 1, "status": "done", "result": result, "digest": result_digest("done", result, None)}
    gw = bearer(api, kits["site-a"])
    r = api.post(f"/api/v1/gateway/tasks/{attempts[0][0]}/result", json=late, headers=gw)
    assert r.status_code == 409
    # The next poll finds the third lease expired too: the task fails, and with it the activation.
    assert api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"] is None
    spec_now = api.get(f"/api/v1/specs/{spec_id}", headers=bearer(api, kits["alice"])).json()
    assert spec_now["state"] == "failed"
    assert "did not finish the task in 3 attempts" in spec_now["reason"]


def test_a_lease_the_gateway_no_longer_holds_goes_to_the_next_attempt_at_its_next_poll(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    """The answer to a poll can be lost (the orchestrator stopped after granting the lease): the
    gateway's next poll, which does not list the task, gets it again without waiting out the lease."""
    alice, gw = bearer(api, kits["alice"]), bearer(api, kits["site-a"])
    publish(api, kits)
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": ["site-a/patients"], "columns": ["age"]}
    spec_id = api.post("/api/v1/specs", json=spec, headers=alice).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=alice)
    lost = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
    again = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
    assert (again["task_id"], again["attempt"]) == (lost["task_id"], lost["attempt"] + 1)
    # The lost attempt's result, should it come after all, is refused; the new attempt's is taken.
    result = {"validated": True}
    upload = {"status": "done", "result": result, "digest": result_digest("done", result, None)}
    url = f"/api/v1/gateway/tasks/{lost['task_id']}/result"
    assert api.post(url, json=upload | {"attempt": lost["attempt"]}, headers=gw).status_code == 409
    assert api.post(url, json=upload | {"attempt": again["attempt"]}, headers=gw).status_code == 200
    assert api.get(f"/api/v1/specs/{spec_id}", headers=alice).json()["state"] == "active"


# --- blobs: a result's bytes are uploaded beside it, checked, and dropped when nothing needs them --


def test_result_blobs_are_checked_owned_by_their_task_and_dropped_when_the_job_ends(
    api: TestClient, kits: dict[str, Kit], tmp_path: Path
) -> None:
    spec_id, alice, gw = _activate(api, kits)
    prepare = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
    ok = {"validated": True}
    done = {"attempt": 1, "status": "done", "result": ok, "digest": result_digest("done", ok, None)}
    api.post(f"/api/v1/gateway/tasks/{prepare['task_id']}/result", json=done, headers=gw)
    params = {"columns": ["age"], "statistics": ["count"]}
    job_id = api.post("/api/v1/jobs", json={"spec_id": spec_id, "params": params}, headers=alice).json()["id"]
    task = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
    assert task["job_id"] == job_id
    data = b"\x00weights\xff" * 1000
    digest = hashlib.sha256(data).hexdigest()
    blob_url = f"/api/v1/gateway/tasks/{task['task_id']}/blobs/{digest}"
    bad = api.put(f"/api/v1/gateway/tasks/{task['task_id']}/blobs/{'0' * 64}", content=data, headers=gw)
    assert bad.status_code == 400 and "does not match" in bad.json()["detail"]
    other_gw = bearer(api, kits["site-b"])
    assert api.put(blob_url, content=data, headers=other_gw).status_code == 404
    # The round input refers to no blob: the gateway may read none through this task.
    assert api.get(blob_url, headers=gw).status_code == 404
    result = {"weights": {"$blob": digest, "size": len(data)}}
    upload = {"attempt": 1, "status": "done", "result": result, "digest": result_digest("done", result, None)}
    url = f"/api/v1/gateway/tasks/{task['task_id']}/result"
    refused = api.post(url, json=upload, headers=gw)
    assert refused.status_code == 400 and "not uploaded" in refused.json()["detail"]
    assert api.put(blob_url, content=data, headers=gw).json()["ok"] is True
    stored = tmp_path / "blobs" / job_id / digest
    assert stored.read_bytes() == data
    assert api.post(url, json=upload, headers=gw).status_code == 200
    # The stats model refuses a result that is not its own: the job ends, and with it the blob.
    job = api.get(f"/api/v1/jobs/{job_id}", headers=alice).json()
    assert job["state"] == "failed"
    assert not stored.exists()
    assert api.get(f"/api/v1/jobs/{job_id}/blobs/{digest}", headers=alice).status_code == 409
