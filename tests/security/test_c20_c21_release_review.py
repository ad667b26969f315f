"""C20, C21: output release review at the orchestrator's API, through the real app in process.

A policy with `release: one|two` holds a finished job's result: the researcher cannot download it
until reviewers of the dataset's org approve it. The author never reviews, a person votes once, "two"
means two distinct people, researchers and other orgs cannot review, and a returned or rejected
result ends the job failed with the reviewer's reason. Every vote and refusal is audited.

A job over datasets of several orgs is released only when each org's reviewers have approved their
own part, under that org's policy: one org never releases another's (the same through real processes:
`test_c20_release_needs_every_contributing_org.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from typer.testing import CliRunner

from custos.audit import read_events
from custos.cli import release as release_cli
from custos.computations.registry import get_model
from custos.core.clock import utcnow
from custos.core.wire import result_digest
from custos.data.table_reader import TableDalReader
from custos.pki.kit import Kit
from custos.policy.permissions import load_permissions, permission_table
from custos.policy.signing import sign_policy
from custos.sdk import Client
from custos.testing.inprocess import bearer

SCHEMA = {"columns": [{"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 100}]}
PARAMS = {"columns": ["age"], "statistics": ["count", "mean"]}
PEOPLE = [
    ("site-a", "gateway", "hospital-a", None),
    ("site-b", "gateway", "hospital-b", None),
    ("alice", "user", "university", "lead_researcher"),
    ("max", "user", "university", "member_researcher"),
    ("admin-u", "user", "university", "org_admin"),
    ("admin-a", "user", "hospital-a", "org_admin"),
    ("admin-a2", "user", "hospital-a", "org_admin"),
    ("admin-b", "user", "hospital-b", "org_admin"),
    ("admin-b2", "user", "hospital-b", "org_admin"),
    ("admin-c", "user", "hospital-c", "org_admin"),
]
SITE_ADMINS = {"site-a": "admin-a", "site-b": "admin-b"}


def policy_text(release: str) -> str:
    return f"""
dataset: patients
grants:
  - orgs: [university, hospital-a]
    models: ["stats@>=1.0,<2"]
    columns: [age]
min_count: 5
release: {release}
"""


def auth(api: TestClient, kits: dict[str, Kit], name: str) -> dict[str, str]:
    return bearer(api, kits[name])


def publish(api: TestClient, kits: dict[str, Kit], release: str, site: str = "site-a") -> None:
    dataset = {"name": "patients", "schema": SCHEMA, "row_count": 100, "mock_arrow_b64": "", "policy": None}
    r = api.post("/api/v1/gateway/publish", json={"datasets": [dataset]}, headers=auth(api, kits, site))
    assert r.status_code == 200, r.text
    admin = SITE_ADMINS[site]
    kit = kits[admin]
    signed = sign_policy(
        policy_text(release),
        f"{site}/patients",
        key=kit.private_key,
        certificate=kit.certificate,
        now=utcnow(),
    )
    r = api.put(
        f"/api/v1/datasets/{site}/patients/policy",
        json=signed.model_dump(mode="json"),
        headers=auth(api, kits, admin),
    )
    assert r.status_code == 200, r.text


def upload(api: TestClient, gw: dict[str, str], task: dict[str, object], result: dict[str, object]) -> None:
    body = {"attempt": task["attempt"], "status": "done", "result": result}
    body["digest"] = result_digest("done", result, None)
    r = api.post(f"/api/v1/gateway/tasks/{task['task_id']}/result", json=body, headers=gw)
    assert r.status_code == 200, r.text


def finished_job(
    api: TestClient, kits: dict[str, Kit], owner: str, release: str = "two", *, site_b: str | None = None
) -> str:
    """A job of `owner` whose only round each gateway computed on 40 rows and uploaded: over
    site-a/patients under `release`, and, given `site_b`, over site-b/patients under that `release`."""
    releases = {"site-a": release} | ({"site-b": site_b} if site_b is not None else {})
    for site, value in releases.items():
        publish(api, kits, value, site)
    who = auth(api, kits, owner)
    gateways = {site: auth(api, kits, site) for site in releases}
    datasets = [f"{site}/patients" for site in releases]
    spec = {"name": "s", "model": "stats@1.0.0", "datasets": datasets, "columns": ["age"]}
    spec_id = api.post("/api/v1/specs", json=spec, headers=who).json()["id"]
    api.post(f"/api/v1/specs/{spec_id}/activate", headers=who)
    for gw in gateways.values():
        task = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
        assert task["kind"] == "prepare"
        upload(api, gw, task, {"validated": True})
    r = api.post("/api/v1/jobs", json={"spec_id": spec_id, "params": PARAMS}, headers=who)
    assert r.status_code == 201, r.text
    job_id: str = r.json()["id"]
    model = get_model("stats", "1.0.0")
    reader = TableDalReader({"patients": pa.table({"age": list(range(20, 60))})})
    for gw in gateways.values():
        task = api.get("/api/v1/gateway/tasks/next?wait=0", headers=gw).json()["task"]
        assert task["kind"] == "compute" and task["job_id"] == job_id
        computed = model.compute_site(reader, "patients", PARAMS, task["round_input"])
        upload(api, gw, task, model.filter_site_result(PARAMS, computed, 5))
    return job_id


def release_of(api: TestClient, kits: dict[str, Kit], job_id: str, reviewer: str = "admin-a2") -> str:
    listed = api.get("/api/v1/releases", headers=auth(api, kits, reviewer)).json()
    (release_id,) = [r["id"] for r in listed if r["job_id"] == job_id]
    assert isinstance(release_id, str)
    return release_id


def actions(audit_path: Path, job_id: str) -> list[tuple[str, str]]:
    return [(e.user, e.action) for e in read_events(audit_path) if e.job == job_id]


def test_c20_result_is_held_until_two_distinct_reviewers_approve(
    api: TestClient, kits: dict[str, Kit], audit_path: Path
) -> None:
    job_id = finished_job(api, kits, "alice", "two")
    alice = auth(api, kits, "alice")
    assert api.get(f"/api/v1/jobs/{job_id}", headers=alice).json()["state"] == "awaiting_release"
    r = api.get(f"/api/v1/jobs/{job_id}/result", headers=alice)
    assert r.status_code == 409
    assert r.json()["detail"] == f"the result of job {job_id} is held for release review (0 of 2 reviews)"

    release_id = release_of(api, kits, job_id)
    first = auth(api, kits, "admin-a")
    r = api.post(f"/api/v1/releases/{release_id}/approve", json={"reason": "counts look safe"}, headers=first)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["approvals"]) == ("partially_reviewed", 1)
    # The same person cannot count twice, whatever the decision.
    for decision in ("approve", "reject"):
        again = api.post(f"/api/v1/releases/{release_id}/{decision}", json={"reason": "x"}, headers=first)
        assert again.status_code == 409
        assert "admin-a already voted approve" in again.json()["detail"]
    r = api.get(f"/api/v1/jobs/{job_id}/result", headers=alice)
    assert r.status_code == 409 and "(1 of 2 reviews)" in r.json()["detail"]

    r = api.post(
        f"/api/v1/releases/{release_id}/approve", json={"reason": ""}, headers=auth(api, kits, "admin-a2")
    )
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["job_state"]) == ("released", "succeeded")
    assert [v["reviewer"] for v in r.json()["votes"]] == ["admin-a", "admin-a2"]
    result = api.get(f"/api/v1/jobs/{job_id}/result", headers=alice)
    assert result.status_code == 200
    assert result.json()["result"] == r.json()["result"]
    done = api.post(f"/api/v1/releases/{release_id}/approve", json={}, headers=auth(api, kits, "admin-a2"))
    assert done.status_code == 409
    trail = actions(audit_path, job_id)
    assert ("admin-a", "release_approved") in trail and ("admin-a2", "release_released") in trail
    assert trail[-1] == ("alice", "result_download")


def test_c21_the_author_never_reviews_its_own_result(
    api: TestClient, kits: dict[str, Kit], audit_path: Path
) -> None:
    job_id = finished_job(api, kits, "admin-a", "one")
    author = auth(api, kits, "admin-a")
    release_id = release_of(api, kits, job_id)
    assert api.get("/api/v1/releases", headers=author).json() == []
    for method, path in (
        ("GET", f"/api/v1/releases/{release_id}"),
        ("POST", f"/api/v1/releases/{release_id}/approve"),
    ):
        r = api.request(method, path, json={"reason": ""}, headers=author)
        assert r.status_code == 403, r.text
        assert "the author of a result never reviews its release" in r.json()["detail"]
    denied = [e.message for e in read_events(audit_path) if e.action == "denied" and e.user == "admin-a"]
    assert len(denied) == 2
    r = api.post(f"/api/v1/releases/{release_id}/approve", json={}, headers=auth(api, kits, "admin-a2"))
    assert r.json()["state"] == "released"  # one reviewer is enough under `release: one`
    assert api.get(f"/api/v1/jobs/{job_id}/result", headers=author).status_code == 200


def test_researchers_and_other_orgs_cannot_see_or_vote(
    api: TestClient, kits: dict[str, Kit], audit_path: Path
) -> None:
    job_id = finished_job(api, kits, "alice", "one")
    release_id = release_of(api, kits, job_id)
    for name in ("max", "alice"):  # the role may not review at all: 403, audited
        who = auth(api, kits, name)
        assert api.get("/api/v1/releases", headers=who).status_code == 403
        assert api.get(f"/api/v1/releases/{release_id}", headers=who).status_code == 403
        r = api.post(f"/api/v1/releases/{release_id}/approve", json={}, headers=who)
        assert r.status_code == 403 and "may not perform release.review" in r.json()["detail"]
    denied = [e.user for e in read_events(audit_path) if e.action == "denied"]
    assert denied.count("max") == 3 and denied.count("alice") == 3
    # An org admin of another org, or of the researcher's org, reviews only its own datasets' results.
    for name in ("admin-b", "admin-u"):
        who = auth(api, kits, name)
        assert api.get("/api/v1/releases", headers=who).json() == []
        for method, path in (
            ("GET", f"/api/v1/releases/{release_id}"),
            ("POST", f"/api/v1/releases/{release_id}/approve"),
        ):
            r = api.request(method, path, json={}, headers=who)
            assert r.status_code == 404 and r.json() == {"detail": f"unknown release {release_id}"}
    r = api.get(f"/api/v1/jobs/{job_id}", headers=auth(api, kits, "alice"))
    assert r.json()["state"] == "awaiting_release"


def test_a_reviewer_sees_the_result_and_what_made_it(api: TestClient, kits: dict[str, Kit]) -> None:
    job_id = finished_job(api, kits, "alice", "two")
    reviewer = auth(api, kits, "admin-a")
    release_id = release_of(api, kits, job_id)
    detail = api.get(f"/api/v1/releases/{release_id}", headers=reviewer).json()
    assert detail["job_id"] == job_id and detail["model"] == "stats@1.0.0"
    assert detail["params"] == PARAMS and detail["columns"] == ["age"]
    assert detail["datasets"] == ["site-a/patients"] and detail["orgs"] == ["hospital-a"]
    assert (detail["submitter"], detail["required"], detail["votes"]) == ("alice", 2, [])
    (summary,) = detail["result"]["summaries"]
    assert (summary["column"], summary["count"], summary["mean"]) == ("age", 40, 39.5)
    held = api.get("/api/v1/releases", params={"state": "held"}, headers=reviewer).json()
    assert [r["id"] for r in held] == [release_id]
    assert api.get("/api/v1/releases", params={"state": "released"}, headers=reviewer).json() == []
    r = api.get("/api/v1/releases", params={"state": "bogus"}, headers=reviewer)
    assert r.status_code == 400 and "state" in r.json()["detail"]


def test_a_reviewer_views_a_pooled_held_result_as_one_output_and_every_view_is_audited(
    api: TestClient, kits: dict[str, Kit], audit_path: Path
) -> None:
    job_id = finished_job(api, kits, "alice", "one")
    release_id = release_of(api, kits, job_id)
    reviewer = auth(api, kits, "admin-a")
    base = f"/api/v1/releases/{release_id}"

    listed = api.get(f"{base}/outputs", headers=reviewer).json()
    assert listed == [
        {
            "name": "result",
            "dataset": None,
            "org": None,
            "kind": "result",
            "file_type": None,
            "blobs": [],
            "flags": 0,
        }
    ]
    view = api.get(f"{base}/outputs/result", headers=reviewer).json()
    assert view["release_id"] == release_id and view["kind"] == "result"
    assert view["output"]["summaries"][0]["count"] == 40
    assert api.get(f"{base}/outputs/site-a/patients", headers=reviewer).status_code == 404
    assert api.get(f"{base}/blobs/{'0' * 64}", headers=reviewer).status_code == 404
    for outsider, status in (("alice", 403), ("admin-b", 404)):
        assert api.get(f"{base}/outputs/result", headers=auth(api, kits, outsider)).status_code == status
    api.get(base, headers=reviewer)

    trail = actions(audit_path, job_id)
    assert ("admin-a", "release_output_viewed") in trail and trail[-1] == ("admin-a", "release_viewed")
    assert ("alice", "release_output_viewed") not in trail and (
        "admin-b",
        "release_output_viewed",
    ) not in trail


@pytest.mark.parametrize(("decision", "past"), [("return", "returned"), ("reject", "rejected")])
def test_returned_or_rejected_ends_the_job_failed_with_the_reason(
    api: TestClient, kits: dict[str, Kit], audit_path: Path, decision: str, past: str
) -> None:
    job_id = finished_job(api, kits, "alice", "two")
    release_id = release_of(api, kits, job_id)
    reviewer = auth(api, kits, "admin-a")
    url = f"/api/v1/releases/{release_id}/{decision}"
    r = api.post(url, json={"reason": "  "}, headers=reviewer)
    assert r.status_code == 400 and f"reason is required to {decision}" in r.json()["detail"]
    r = api.post(url, json={"reason": "a cell of 3 patients"}, headers=reviewer)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["job_state"]) == (past, "failed")
    alice = auth(api, kits, "alice")
    job = api.get(f"/api/v1/jobs/{job_id}", headers=alice).json()
    assert (job["state"], job["reason"]) == (
        "failed",
        f"the result was {past} by admin-a: a cell of 3 patients",
    )
    download = api.get(f"/api/v1/jobs/{job_id}/result", headers=alice)
    assert download.status_code == 409 and "a cell of 3 patients" in download.json()["detail"]
    late = api.post(f"/api/v1/releases/{release_id}/approve", json={}, headers=auth(api, kits, "admin-a2"))
    assert late.status_code == 409 and f"is {past}; it takes no more votes" in late.json()["detail"]
    assert ("admin-a", f"release_{past}") in actions(audit_path, job_id)


def test_without_release_review_the_job_succeeds_at_once(api: TestClient, kits: dict[str, Kit]) -> None:
    job_id = finished_job(api, kits, "alice", "none")
    alice = auth(api, kits, "alice")
    assert api.get(f"/api/v1/jobs/{job_id}", headers=alice).json()["state"] == "succeeded"
    assert api.get(f"/api/v1/jobs/{job_id}/result", headers=alice).status_code == 200
    assert api.get("/api/v1/releases", headers=auth(api, kits, "admin-a")).json() == []


def test_the_release_commands_review_through_the_sdk(
    api: TestClient, kits: dict[str, Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = finished_job(api, kits, "alice", "two")
    release_id = release_of(api, kits, job_id)
    signed_in = {name: auth(api, kits, name) for name in ("admin-a", "admin-a2")}

    def client_of(kit: Path) -> Client:
        http = TestClient(api.app, base_url="http://testserver/api/v1", headers=signed_in[kit.name])
        return Client(http, url="http://testserver")

    monkeypatch.setattr(release_cli, "open_client", client_of)
    runner = CliRunner()

    def custos_release(*args: str) -> str:
        run = runner.invoke(release_cli.app, list(args), env={"COLUMNS": "160"})
        assert run.exit_code == 0, run.output
        return run.output

    listed = custos_release("list", "--kit", "admin-a", "--state", "held")
    assert release_id in listed and "0 of 2" in listed and "alice" in listed
    shown = custos_release("show", release_id, "--kit", "admin-a")
    assert '{"columns": ["age"], "statistics": ["count", "mean"]}' in shown and "39.5" in shown
    first = custos_release("approve", release_id, "--kit", "admin-a", "--reason", "no small cells")
    assert "partially_reviewed" in first and "no small cells" in first
    second = custos_release("approve", release_id, "--kit", "admin-a2")
    assert "released" in second and "1 of 2" not in second
    assert custos_release("list", "--kit", "admin-a", "--state", "held").strip() == (
        "no release to review in state held"
    )
    refused = runner.invoke(release_cli.app, ["return", release_id, "--kit", "admin-a"])
    assert refused.exit_code != 0  # --reason is required to return


def test_a_cancelled_job_s_release_takes_no_votes(api: TestClient, kits: dict[str, Kit]) -> None:
    job_id = finished_job(api, kits, "alice", "one")
    release_id = release_of(api, kits, job_id)
    r = api.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth(api, kits, "alice"))
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    r = api.post(f"/api/v1/releases/{release_id}/approve", json={}, headers=auth(api, kits, "admin-a"))
    assert (
        r.status_code == 409
        and r.json()["detail"] == f"job {job_id} is cancelled; its release takes no more votes"
    )
    assert api.get(f"/api/v1/jobs/{job_id}/result", headers=auth(api, kits, "alice")).status_code == 409


# --- a job over datasets of several orgs: each org approves its own part -------------------------


def vote(
    api: TestClient,
    kits: dict[str, Kit],
    release_id: str,
    who: str,
    decision: str = "approve",
    reason: str = "",
) -> Response:
    response: Response = api.post(
        f"/api/v1/releases/{release_id}/{decision}", json={"reason": reason}, headers=auth(api, kits, who)
    )
    return response


def parts(body: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    return [(p["org"], p["state"], p["approvals"], p["required"]) for p in body["parts"]]


def test_c20_one_org_s_approvals_never_release_another_org_s_part(
    api: TestClient, kits: dict[str, Kit], audit_path: Path
) -> None:
    job_id = finished_job(api, kits, "alice", "one", site_b="one")
    release_id = release_of(api, kits, job_id, "admin-b")
    shown = api.get(f"/api/v1/releases/{release_id}", headers=auth(api, kits, "admin-b")).json()
    assert (shown["orgs"], shown["required"]) == (["hospital-a", "hospital-b"], 2)
    assert [(p["org"], p["datasets"]) for p in shown["parts"]] == [
        ("hospital-a", ["site-a/patients"]),
        ("hospital-b", ["site-b/patients"]),
    ]
    # A pooled result is every org's: each reviewer reads it whole.
    (summary,) = shown["result"]["summaries"]
    assert (summary["count"], shown["withheld"]) == (80, [])

    r = vote(api, kits, release_id, "admin-b", reason="site-b is fine")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["job_state"], r.json()["approvals"]) == (
        "partially_reviewed",
        "awaiting_release",
        1,
    )
    assert parts(r.json()) == [("hospital-a", "pending", 0, 1), ("hospital-b", "approved", 1, 1)]
    alice = auth(api, kits, "alice")
    download = api.get(f"/api/v1/jobs/{job_id}/result", headers=alice)
    assert download.status_code == 409
    assert download.json()["detail"] == (
        f"the result of job {job_id} is held for release review (1 of 2 reviews; waiting for hospital-a)"
    )
    # A second reviewer of hospital-b cannot stand in for hospital-a.
    r = vote(api, kits, release_id, "admin-b2")
    assert r.status_code == 409
    assert r.json()["detail"] == (
        f"hospital-b has approved its part of release {release_id} (1 of 1); the release waits for hospital-a"
    )
    assert api.get(f"/api/v1/jobs/{job_id}/result", headers=alice).status_code == 409

    r = vote(api, kits, release_id, "admin-a")
    assert (r.json()["state"], r.json()["job_state"]) == ("released", "succeeded")
    assert [(v["reviewer"], v["org"]) for v in r.json()["votes"]] == [
        ("admin-b", "hospital-b"),
        ("admin-a", "hospital-a"),
    ]
    assert api.get(f"/api/v1/jobs/{job_id}/result", headers=alice).status_code == 200
    approved = [e.message for e in read_events(audit_path) if e.action == "release_approved"]
    assert approved == [
        f"{release_id} for hospital-b: 1 of 1 (1 of 2 reviews; waiting for hospital-a): site-b is fine",
        f"{release_id} for hospital-a: 1 of 1 (2 of 2 reviews)",
    ]


def test_c21_two_distinct_reviewers_are_counted_within_each_org(
    api: TestClient, kits: dict[str, Kit]
) -> None:
    # hospital-a's policy asks for two reviewers, hospital-b's for one: each org's own number.
    job_id = finished_job(api, kits, "alice", "two", site_b="one")
    release_id = release_of(api, kits, job_id, "admin-b")
    r = vote(api, kits, release_id, "admin-b")
    assert parts(r.json()) == [("hospital-a", "pending", 0, 2), ("hospital-b", "approved", 1, 1)]
    r = vote(api, kits, release_id, "admin-a")
    assert (r.json()["state"], r.json()["approvals"], r.json()["required"]) == ("partially_reviewed", 2, 3)
    assert parts(r.json())[0] == ("hospital-a", "pending", 1, 2)
    again = vote(api, kits, release_id, "admin-a")
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"admin-a already voted approve on release {release_id}; two distinct reviewers are needed"
    )
    r = vote(api, kits, release_id, "admin-a2")
    assert (r.json()["state"], r.json()["job_state"]) == ("released", "succeeded")
    assert [p["reviewers"] for p in r.json()["parts"]] == [["admin-a", "admin-a2"], ["admin-b"]]


def test_c20_the_author_s_own_org_needs_another_of_its_reviewers(
    api: TestClient, kits: dict[str, Kit], audit_path: Path
) -> None:
    # admin-a of hospital-a submits over both sites: hospital-b's approval does not release
    # hospital-a's part, and admin-a may not approve it: another reviewer of hospital-a must.
    job_id = finished_job(api, kits, "admin-a", "one", site_b="one")
    release_id = release_of(api, kits, job_id, "admin-b")
    assert vote(api, kits, release_id, "admin-b").json()["state"] == "partially_reviewed"
    r = vote(api, kits, release_id, "admin-a")
    assert r.status_code == 403
    assert "the author of a result never reviews its release" in r.json()["detail"]
    assert api.get(f"/api/v1/jobs/{job_id}/result", headers=auth(api, kits, "admin-a")).status_code == 409
    r = vote(api, kits, release_id, "admin-a2")
    assert (r.json()["state"], r.json()["job_state"]) == ("released", "succeeded")
    assert ("admin-a", "denied") in [(e.user, e.action) for e in read_events(audit_path)]


@pytest.mark.parametrize(("decision", "past"), [("return", "returned"), ("reject", "rejected")])
def test_c20_any_contributing_org_stops_the_release(
    api: TestClient, kits: dict[str, Kit], decision: str, past: str
) -> None:
    job_id = finished_job(api, kits, "alice", "one", site_b="one")
    release_id = release_of(api, kits, job_id, "admin-b")
    vote(api, kits, release_id, "admin-b")
    r = vote(api, kits, release_id, "admin-a", decision, "a cell of 3 patients at site-a")
    assert (r.json()["state"], r.json()["job_state"]) == (past, "failed")
    assert parts(r.json()) == [("hospital-a", past, 0, 1), ("hospital-b", "approved", 1, 1)]
    late = vote(api, kits, release_id, "admin-b2")
    assert late.status_code == 409 and f"is {past}; it takes no more votes" in late.json()["detail"]
    download = api.get(f"/api/v1/jobs/{job_id}/result", headers=auth(api, kits, "alice"))
    assert download.status_code == 409 and "a cell of 3 patients at site-a" in download.json()["detail"]


def test_c20_an_org_that_contributed_nothing_never_votes_even_if_allowed_to_review(
    api: TestClient, kits: dict[str, Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A project whose permission table let org admins review every org's results: hospital-c's
    # admin may then read the release, but holds no part of it to approve.
    table = permission_table().model_dump(mode="json")
    table["operations"]["release.review"] = {"org_admin": ["any"]}
    wider = load_permissions(json.dumps(table))
    monkeypatch.setattr("custos.orchestrator.services.access.permission_table", lambda: wider)
    job_id = finished_job(api, kits, "alice", "one", site_b="one")
    release_id = release_of(api, kits, job_id, "admin-c")
    assert api.get(f"/api/v1/releases/{release_id}", headers=auth(api, kits, "admin-c")).status_code == 200
    r = vote(api, kits, release_id, "admin-c")
    assert r.status_code == 403
    assert r.json()["detail"] == (
        f"admin-c may not vote on release {release_id}: each org approves its own part, "
        "and its reviewers are the org admins of hospital-a, hospital-b"
    )
    # Under that table too, hospital-b's admin approves hospital-b's part alone.
    assert parts(vote(api, kits, release_id, "admin-b").json())[0] == ("hospital-a", "pending", 0, 1)


def test_the_release_show_command_prints_each_org_s_part(
    api: TestClient, kits: dict[str, Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = finished_job(api, kits, "alice", "one", site_b="one")
    release_id = release_of(api, kits, job_id, "admin-b")
    vote(api, kits, release_id, "admin-b")
    signed_in = auth(api, kits, "admin-a")

    def client_of(kit: Path) -> Client:
        http = TestClient(api.app, base_url="http://testserver/api/v1", headers=signed_in)
        return Client(http, url="http://testserver")

    monkeypatch.setattr(release_cli, "open_client", client_of)
    run = CliRunner().invoke(
        release_cli.app, ["show", release_id, "--kit", "admin-a"], env={"COLUMNS": "160"}
    )
    assert run.exit_code == 0, run.output
    lines = [" ".join(line.split()) for line in run.output.splitlines()]
    assert "reviews 1 of 2 approvals; waiting for hospital-a" in lines
    assert "reviewers org admins of hospital-a, hospital-b, each for their own org" in lines
    assert "org datasets approvals state approved by" in lines
    assert "hospital-a site-a/patients 0 of 1 pending" in lines
    assert "hospital-b site-b/patients 1 of 1 approved admin-b" in lines
