"""The portal's budget page and the mirror's history in process: each change of a mirror row is kept
with the job or ledger report that moved it (and a report that changes nothing adds none); the page
charts each row the user may see with the ledger table behind it, a researcher their own and their
org's rows only, an org admin every row of its datasets, nothing for one who may see no row; a name
a gateway reports stays text."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tests.unit.orchestrator.test_budget_preview as preview_tests
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.unit.orchestrator.test_budget_preview import (
    COUNT_AGE,
    DP_POLICY,
    Session,
    active_spec,
    publish,
    standing,
    upload,
)
from tests.unit.orchestrator.test_human_sign_in import PASSWORD, cheap_settings
from tests.unit.orchestrator.test_portal_audit import _as

from custos.core.wire import result_digest
from custos.orchestrator.app import create_app
from custos.orchestrator.portal.pages_budget import budget_series
from custos.orchestrator.tables import BudgetHistory
from custos.pki.kit import Kit
from custos.pki.signin import sign_in

XSS = "<img src=x onerror=alert(1)>"
kits = preview_tests.kits  # that module's provisioned project


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    """The orchestrator in process, on SQLite and on PostgreSQL."""
    settings = cheap_settings(tmp_path, database_url=database_url)
    app = create_app(settings, kits["orchestrator"].root_certificate)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        for name in ("alice", "bob", "admin-a", "admin-b", "mallory"):
            token = sign_in(client, kits[name]).token
            r = client.post(
                "/api/v1/auth/password",
                json={"password": PASSWORD},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 204, r.text
        client.cookies.clear()
        yield client


def _job(api: TestClient, who: Session, spec_id: str, user: str, spent: float, ledger: object = None) -> str:
    r = api.post("/api/v1/jobs", json={"spec_id": spec_id, "params": COUNT_AGE}, headers=who(user))
    assert r.status_code == 201, r.text
    result: dict[str, object] = {"budget": standing(spent)}
    task = upload(api, who, "site-a", result) if ledger is None else _upload_with(api, who, result, ledger)
    return str(task["job_id"])


def _upload_with(
    api: TestClient, who: Session, result: dict[str, object], ledger: object
) -> dict[str, object]:
    task: dict[str, object] = api.get("/api/v1/gateway/tasks/next?wait=0", headers=who("site-a")).json()[
        "task"
    ]
    body = {"attempt": task["attempt"], "status": "done", "result": result, "ledger": ledger}
    body["digest"] = result_digest("done", result, None)
    r = api.post(f"/api/v1/gateway/tasks/{task['task_id']}/result", json=body, headers=who("site-a"))
    assert r.status_code == 200, r.text
    return task


def _history(api: TestClient) -> list[tuple[str, str, float, str]]:
    services = api.app.state.services  # type: ignore[attr-defined]
    rows = services.run(lambda s: list(s.execute(select(BudgetHistory).order_by(BudgetHistory.id)).scalars()))
    return [(r.kind, r.subject, round(r.spent_epsilon, 9), r.cause) for r in rows]


@pytest.fixture
def spec_id(api: TestClient, kits: dict[str, Kit]) -> str:
    who = Session(api, kits)
    publish(api, kits, who, "site-a", DP_POLICY)
    return active_spec(api, who, ["site-a/patients"])


def test_each_change_of_the_mirror_is_kept_with_what_moved_it(
    api: TestClient,
    kits: dict[str, Kit],
    spec_id: str,
) -> None:
    who = Session(api, kits)
    first = _job(api, who, spec_id, "alice", 1.0)
    second = _job(api, who, spec_id, "bob", 1.0)
    report = {
        "head": 7,
        "datasets": [{"dataset": "patients", "spent": [
            {"researcher": "alice", "org": "university", "epsilon": 2.0, "delta": 0.0},
            {"researcher": "bob", "org": "university", "epsilon": 1.0, "delta": 0.0},
        ]}],
    }  # fmt: skip
    third = _job(api, who, spec_id, "alice", 0.5, ledger=report)  # an older standing: ignored

    assert _history(api) == [
        ("researcher", "alice", 1.0, first),
        ("org", "university", 1.0, first),
        ("researcher", "bob", 1.0, second),
        ("org", "university", 2.0, second),
        ("researcher", "alice", 2.0, "ledger report 7 of site-a"),
        ("org", "university", 3.0, "ledger report 7 of site-a"),
    ]
    assert third not in str(_history(api))


def test_the_page_charts_what_each_user_may_see_and_a_reported_name_stays_text(
    api: TestClient,
    kits: dict[str, Kit],
    spec_id: str,
) -> None:
    who = Session(api, kits)
    report = {
        "head": 3,
        "datasets": [{"dataset": "patients", "spent": [
            {"researcher": XSS, "org": "elsewhere", "epsilon": 0.5, "delta": 0.0},
        ]}],
    }  # fmt: skip
    job = _job(api, who, spec_id, "alice", 1.0, ledger=report)

    _as(api, "alice")
    page = api.get("/budget")
    assert page.status_code == 200, page.text
    main = page.text.split("<main", 1)[1]
    assert main.count("<svg") == 2  # her own row and her org's
    assert "site-a/patients: alice" in main and "site-a/patients: university (organisation)" in main
    assert job in main and "elsewhere" not in main and "onerror" not in main

    _as(api, "admin-a")
    page = api.get("/budget")
    main = page.text.split("<main", 1)[1]
    assert main.count("<svg") == 4  # every row of hospital-a's dataset
    assert html.escape(XSS) in main and "<img" not in main
    assert "ledger report 3 of site-a" in main

    _as(api, "mallory")  # of elsewhere: its org's row, not the reported researcher's
    main = api.get("/budget").text.split("<main", 1)[1]
    assert main.count("<svg") == 1 and "site-a/patients: elsewhere (organisation)" in main
    assert "onerror" not in main

    _as(api, "admin-b")
    main = api.get("/budget").text.split("<main", 1)[1]
    assert "<svg" not in main and 'id="no-budget"' in main


def test_the_chart_draws_steps_from_zero_to_the_cap_until_now() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)

    def change(hours: float, spent: float) -> BudgetHistory:
        return BudgetHistory(
            at=start + timedelta(hours=hours), dataset="site-a/patients", kind="researcher",
            subject="alice", org="university", dataset_org="hospital-a", spent_epsilon=spent,
            spent_delta=0.0, cap_epsilon=4.0, cap_delta=0.0, cause="job_1",
        )  # fmt: skip

    one = budget_series([change(0, 1.0)], start + timedelta(hours=2))[0].chart
    spent, remaining = (line.points.split() for line in one.lines)
    assert len(spent) == len(remaining) == 2  # a flat line from the change until now
    assert spent[0].split(",")[1] == spent[1].split(",")[1] != remaining[0].split(",")[1]
    assert [t.label for t in one.y_ticks] == ["0", "1", "2", "3", "4"]  # 0 to the cap

    two = budget_series([change(0, 1.0), change(1, 3.0)], start + timedelta(hours=2))[0].chart
    ys = [float(p.split(",")[1]) for p in two.lines[0].points.split()]
    xs = [float(p.split(",")[0]) for p in two.lines[0].points.split()]
    assert len(ys) == 4 and ys[0] == ys[1] > ys[2] == ys[3]  # held at 1, then a step up to 3
    assert xs[1] == xs[2]
