"""The budget mirror and the cost preview in process: a DP task's reported standing is mirrored per
researcher and per org, each caller sees only the rows they may, and a preview checks a job like a
submission, prices it from the policy and the mirror, and runs and records nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from custos.core.clock import utcnow
from custos.core.wire import result_digest
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.signin import sign_in
from custos.policy.signing import sign_policy

DP_POLICY = """
dataset: patients
grants:
  - orgs: [university]
    models: ["stats@>=1.0,<2"]
    columns: [age, sex]
privacy:
  dp: {mechanism: laplace, epsilon_per_job: 1.0}
  budget: {epsilon_per_researcher: 3.0, epsilon_per_org: 10.0}
"""
PLAIN_POLICY = """
dataset: patients
grants:
  - orgs: [university]
    models: ["stats@>=1.0,<2"]
    columns: [age, sex]
"""
SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 100},
        {"name": "sex", "type": "string", "kind": "categorical", "categories": ["F", "M"]},
    ]
}
COUNT_AGE = {"columns": ["age"], "statistics": ["count"]}
SITES = ["site-a/patients", "site-b/patients"]


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    root = tmp_path_factory.mktemp("kits")
    participants = [
        {"name": "site-a", "type": "gateway", "org": "hospital-a"},
        {"name": "site-b", "type": "gateway", "org": "hospital-b"},
        {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
        {"name": "bob", "type": "user", "org": "university", "role": "lead_researcher"},
        {"name": "mallory", "type": "user", "org": "elsewhere", "role": "lead_researcher"},
        {"name": "admin-a", "type": "user", "org": "hospital-a", "role": "org_admin"},
        {"name": "admin-b", "type": "user", "org": "hospital-b", "role": "org_admin"},
    ]
    provision(ProjectSpec.model_validate({"name": "budget", "participants": participants}), root)
    return {p.name: load_kit(p) for p in root.iterdir() if (p / "config.json").exists()}


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path) -> Iterator[TestClient]:
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", audit_path=tmp_path / "audit.log"
    )
    with TestClient(create_app(settings, kits["orchestrator"].root_certificate)) as client:
        yield client


class Session:
    """Bearer headers per participant, signed in once."""

    def __init__(self, api: TestClient, kits: dict[str, Kit]) -> None:
        self.api, self.kits = api, kits
        self._headers: dict[str, dict[str, str]] = {}

    def __call__(self, name: str) -> dict[str, str]:
        if name not in self._headers:
            self._headers[name] = {"Authorization": f"Bearer {sign_in(self.api, self.kits[name]).token}"}
        return self._headers[name]


def publish(api: TestClient, kits: dict[str, Kit], who: Session, site: str, policy: str) -> None:
    admin = kits[f"admin-{site[-1]}"]
    signed = sign_policy(
        policy, f"{site}/patients", key=admin.private_key, certificate=admin.certificate, now=utcnow()
    )
    body = {
        "datasets": [
            {
                "name": "patients",
                "schema": SCHEMA,
                "row_count": 1000,
                "mock_arrow_b64": "",
                "policy": signed.model_dump(mode="json"),
            }
        ]
    }
    assert api.post("/api/v1/gateway/publish", json=body, headers=who(site)).status_code == 200


def upload(api: TestClient, who: Session, gateway: str, result: dict[str, Any]) -> dict[str, Any]:
    """Lease the gateway's next task and report it done with `result`; return the task."""
    task: dict[str, Any] = api.get("/api/v1/gateway/tasks/next?wait=0", headers=who(gateway)).json()["task"]
    body = {"attempt": task["attempt"], "status": "done", "result": result}
    body["digest"] = result_digest("done", result, None)
    r = api.post(f"/api/v1/gateway/tasks/{task['task_id']}/result", json=body, headers=who(gateway))
    assert r.status_code == 200, r.text
    return task


def active_spec(api: TestClient, who: Session, sites: list[str]) -> str:
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": sites, "columns": ["age", "sex"]}
    spec_id: str = api.post("/api/v1/specs", json=spec, headers=who("alice")).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=who("alice"))
    for site in sites:
        upload(api, who, site.split("/")[0], {"validated": True})
    assert api.get(f"/api/v1/specs/{spec_id}", headers=who("alice")).json()["state"] == "active"
    return spec_id


@pytest.fixture
def spec_id(api: TestClient, kits: dict[str, Kit]) -> str:
    """An active stats spec of alice over site-a and site-b (DP, laplace, ε 1 per job)."""
    who = Session(api, kits)
    publish(api, kits, who, "site-a", DP_POLICY)
    publish(api, kits, who, "site-b", DP_POLICY)
    return active_spec(api, who, SITES)


def standing(spent: float, cap: float = 3.0) -> dict[str, float]:
    return {
        "spent_epsilon": spent, "cap_epsilon": cap, "remaining_epsilon": cap - spent,
        "spent_delta": 0.0, "cap_delta": 0.0, "remaining_delta": 0.0,
    }  # fmt: skip


def run_job(api: TestClient, who: Session, spec_id: str, user: str, report: Any) -> None:
    """Submit a job as `user`; site-a reports `report` as its budget standing."""
    r = api.post("/api/v1/jobs", json={"spec_id": spec_id, "params": COUNT_AGE}, headers=who(user))
    assert r.status_code == 201, r.text
    upload(api, who, "site-a", {"budget": report})


def preview(api: TestClient, who: Session, spec_id: str, user: str = "alice") -> dict[str, Any]:
    r = api.post("/api/v1/jobs/preview", json={"spec_id": spec_id, "params": COUNT_AGE}, headers=who(user))
    assert r.status_code == 200, r.text
    return {d["dataset"]: d for d in r.json()["datasets"]}


def test_preview_prices_the_job_and_shows_the_full_cap_before_anything_is_mirrored(
    api: TestClient, kits: dict[str, Kit], spec_id: str
) -> None:
    who = Session(api, kits)
    costs = preview(api, who, spec_id)

    assert costs["site-a/patients"] | {"epsilon": round(costs["site-a/patients"]["epsilon"], 9)} == {
        "dataset": "site-a/patients", "dp": True, "mechanism": "laplace", "queries": 1,
        "epsilon": 1.0, "delta": 0.0, "cap_epsilon": 3.0, "cap_delta": 0.0,
        "remaining_epsilon": 3.0, "remaining_delta": 0.0, "mirrored": False, "would_exceed": False,
    }  # fmt: skip
    assert costs["site-b/patients"] == costs["site-a/patients"] | {"dataset": "site-b/patients"}


def test_preview_spends_nothing_on_data_without_dp_and_refuses_to_pool_it_with_dp(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    who = Session(api, kits)
    publish(api, kits, who, "site-a", DP_POLICY)
    publish(api, kits, who, "site-b", PLAIN_POLICY)
    plain = active_spec(api, who, ["site-b/patients"])
    mixed = active_spec(api, who, SITES)

    costs = preview(api, who, plain)["site-b/patients"]
    assert (costs["dp"], costs["epsilon"]) == (False, 0.0)
    for path in ("/api/v1/jobs/preview", "/api/v1/jobs"):
        r = api.post(path, json={"spec_id": mixed, "params": COUNT_AGE}, headers=who("alice"))
        assert r.status_code == 400, r.text
        assert r.json()["detail"] == (
            "the job pools datasets with differential privacy (site-a/patients) and without "
            "(site-b/patients); their results cannot be pooled: choose datasets whose policies agree"
        )
    assert api.get("/api/v1/gateway/tasks/next?wait=0", headers=who("site-a")).json()["task"] is None


def test_preview_runs_nothing_and_records_nothing(
    api: TestClient, kits: dict[str, Kit], spec_id: str, tmp_path: Path
) -> None:
    who = Session(api, kits)
    preview(api, who, spec_id)

    assert api.get("/api/v1/gateway/tasks/next?wait=0", headers=who("site-a")).json()["task"] is None
    assert api.get("/api/v1/budget", headers=who("alice")).json() == []
    audit = (tmp_path / "audit.log").read_text(encoding="utf-8")
    assert "[A:spec_active]" in audit
    assert "[A:job_submitted]" not in audit


def test_a_reported_standing_is_mirrored_for_the_researcher_and_the_org(
    api: TestClient, kits: dict[str, Kit], spec_id: str
) -> None:
    who = Session(api, kits)
    run_job(api, who, spec_id, "alice", standing(1.0))
    run_job(api, who, spec_id, "bob", standing(0.5))

    rows = api.get("/api/v1/budget", headers=who("alice")).json()
    assert [
        (r["kind"], r["subject"], r["spent_epsilon"], r["cap_epsilon"], r["remaining_epsilon"]) for r in rows
    ] == [
        ("researcher", "alice", 1.0, 3.0, 2.0),
        ("org", "university", 1.5, 10.0, 8.5),
    ]
    assert {r["dataset"] for r in rows} == {"site-a/patients"}
    costs = preview(api, who, spec_id)["site-a/patients"]
    assert (costs["remaining_epsilon"], costs["mirrored"], costs["would_exceed"]) == (2.0, True, False)


def test_the_mirror_never_goes_back_and_a_spent_budget_is_previewed_as_exceeded(
    api: TestClient, kits: dict[str, Kit], spec_id: str
) -> None:
    who = Session(api, kits)
    run_job(api, who, spec_id, "alice", standing(3.0))
    run_job(api, who, spec_id, "alice", standing(2.0))  # an older report arriving late

    (mine,) = [r for r in api.get("/api/v1/budget", headers=who("alice")).json() if r["kind"] == "researcher"]
    assert mine["spent_epsilon"] == 3.0
    costs = preview(api, who, spec_id)["site-a/patients"]
    assert (costs["remaining_epsilon"], costs["would_exceed"]) == (0.0, True)


def test_each_caller_sees_only_the_rows_they_may(api: TestClient, kits: dict[str, Kit], spec_id: str) -> None:
    who = Session(api, kits)
    run_job(api, who, spec_id, "alice", standing(1.0))
    run_job(api, who, spec_id, "bob", standing(0.5))

    def seen(user: str) -> set[tuple[str, str]]:
        r = api.get("/api/v1/budget", headers=who(user))
        assert r.status_code == 200, r.text
        return {(row["kind"], row["subject"]) for row in r.json()}

    assert seen("bob") == {("researcher", "bob"), ("org", "university")}
    assert seen("admin-a") == {("researcher", "alice"), ("researcher", "bob"), ("org", "university")}
    assert seen("admin-b") == set()
    assert seen("mallory") == set()
    assert api.get("/api/v1/budget", headers=who("site-a")).status_code == 403


def test_a_malformed_report_is_not_mirrored_and_the_result_is_still_recorded(
    api: TestClient, kits: dict[str, Kit], spec_id: str
) -> None:
    who = Session(api, kits)
    run_job(api, who, spec_id, "alice", {"spent_epsilon": "lots"})

    assert api.get("/api/v1/budget", headers=who("alice")).json() == []


@pytest.mark.parametrize(
    ("user", "params", "status", "detail"),
    [
        ("alice", {"columns": ["postcode"], "statistics": ["count"]}, 400, "postcode"),
        ("alice", {"columns": ["age"], "statistics": ["min"]}, 403, "min and max have no differentially"),
        ("mallory", COUNT_AGE, 404, "unknown compute spec"),
    ],
)
def test_preview_refuses_what_submit_would_refuse(
    api: TestClient, kits: dict[str, Kit], spec_id: str, user: str, params: Any, status: int, detail: str
) -> None:
    who = Session(api, kits)
    r = api.post("/api/v1/jobs/preview", json={"spec_id": spec_id, "params": params}, headers=who(user))

    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]
