"""The portal's audit page in process: a search by user, action, job and dates over the orchestrator's
trail, its verdict against the anchored heads for a project admin (and a tampered line named), none
for an org admin, no page for a researcher; a message of markup stays text."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.unit.orchestrator.test_human_sign_in import PASSWORD, cheap_settings

from custos.audit import AuditTrail
from custos.orchestrator.app import create_app
from custos.pki.kit import Kit, load_kit
from custos.pki.provision import ProjectSpec, provision
from custos.pki.signin import sign_in

XSS = "<img src=x onerror=alert(1)><script>alert(1)</script>"
CSRF_INPUT = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    spec = ProjectSpec.model_validate(
        {
            "name": "audit-page-test",
            "participants": [
                {"name": "site-a", "type": "gateway", "org": "hospital-a"},
                {"name": "root", "type": "user", "org": "operator", "role": "project_admin"},
                {"name": "carol", "type": "user", "org": "hospital-a", "role": "org_admin"},
                {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
            ],
        }
    )
    root = tmp_path_factory.mktemp("kits") / "project"
    provision(spec, root)
    return {p.name: load_kit(p) for p in root.iterdir() if (p / "config.json").exists()}


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(cheap_settings(tmp_path), kits["orchestrator"].root_certificate)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        for name in ("root", "carol", "alice"):
            token = sign_in(client, kits[name]).token
            r = client.post(
                "/api/v1/auth/password",
                json={"password": PASSWORD},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 204, r.text
        client.cookies.clear()
        yield client


def _as(api: TestClient, name: str) -> None:
    api.cookies.clear()
    form = api.get("/signin")
    token = CSRF_INPUT.search(form.text)
    assert token is not None
    r = api.post("/signin", data={"csrf": token.group(1), "name": name, "password": PASSWORD})
    assert r.status_code == 303, r.text


def _events_table(page: str) -> str:
    start = page.index('<table id="events">')
    return page[start : page.index("</table>", start)]


def test_a_project_admin_searches_the_trail_and_reads_its_verdict(api: TestClient, tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "audit.log")
    trail.append(user="alice", action="code_submitted", message=f"a note {XSS}")
    _as(api, "root")
    page = api.get("/audit", params={"user": "alice", "action": "code_submitted"})
    assert page.status_code == 200
    table = _events_table(page.text)
    assert html.escape(XSS) in table
    assert "<script>" not in table and "<img" not in table
    assert "sign_in" not in table  # the filters hold: only alice's code_submitted
    assert "Verified:" in page.text

    none = api.get("/audit", params={"action": "code_submitted", "until": "2000-01-01"})
    assert "No event matches." in none.text
    bad = api.get("/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and "since must be a date" in bad.text

    lines = (tmp_path / "audit.log").read_bytes().split(b"\n")
    edited = next(i for i, line in enumerate(lines) if b"a note" in line)
    lines[edited] = lines[edited].replace(b"a note", b"A note")
    (tmp_path / "audit.log").write_bytes(b"\n".join(lines))
    tampered = api.get("/audit")
    assert f"Not verified: line {edited + 1}:" in tampered.text


def test_an_org_admin_searches_without_the_verdict_and_a_researcher_is_refused(api: TestClient) -> None:
    _as(api, "carol")
    page = api.get("/audit")
    assert (
        page.status_code == 200 and "verify" not in page.text.lower().split("<main", 1)[1].split("search")[0]
    )
    assert "Does the orchestrator" not in page.text
    _as(api, "alice")
    assert api.get("/audit").status_code == 403
