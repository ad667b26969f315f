"""A database outage answers 503 with the reason, once logged, not a traceback per request; the first
request after it is back is served again and the log says how many were refused meanwhile."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from custos.local.process import free_port
from custos.orchestrator.db import Database
from custos.testing.inprocess import bearer, orchestrator_in_process, provision_people

PEOPLE = [("alice", "user", "university", "lead_researcher")]
REQUESTS = 5


def test_an_unreachable_database_answers_503_with_the_reason_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kits = provision_people(tmp_path / "kits", "outage", PEOPLE)
    data = tmp_path / "db"
    data.mkdir()
    settings = {"database_url": f"sqlite:///{data / 'o.db'}", "audit_path": tmp_path / "audit.log"}
    with orchestrator_in_process(kits, tmp_path, **settings) as api:
        headers = bearer(api, kits["alice"])
        assert api.get("/api/v1/me", headers=headers).status_code == 200
        db = api.app.state.services.db  # type: ignore[attr-defined]

        # The database's folder is gone: no connection can open the file (not even as root).
        db.engine.dispose()
        data.rename(tmp_path / "db-away")
        data.write_text("not a folder")
        caplog.set_level(logging.INFO, logger="custos.orchestrator")
        answers = [api.get("/api/v1/me", headers=headers) for _ in range(REQUESTS)]

        assert {a.status_code for a in answers} == {503}
        assert {a.json()["detail"] for a in answers} == {
            "the database is unavailable: unable to open database file"
        }
        logged = [r.getMessage() for r in caplog.records if r.name == "custos.orchestrator"]
        assert len([m for m in logged if "the database is unavailable" in m]) == 1
        assert not [r for r in caplog.records if r.exc_info], "no traceback per request"

        # Back: served again, and the end of the outage is logged with its count.
        data.unlink()
        (tmp_path / "db-away").rename(data)
        assert api.get("/api/v1/me", headers=headers).status_code == 200
        logged = [r.getMessage() for r in caplog.records if r.name == "custos.orchestrator"]
        assert f"the database is back; {REQUESTS} request(s) were refused while it was unavailable" in logged


def test_a_postgresql_server_that_refuses_connections_answers_503(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    kits = provision_people(tmp_path / "kits", "outage-pg", PEOPLE)
    with orchestrator_in_process(kits, tmp_path, database_url=postgres_url) as api:
        headers = bearer(api, kits["alice"])
        services = api.app.state.services  # type: ignore[attr-defined]
        served = services.db
        # The same database, at a port where no server listens: every connection is refused.
        address = postgres_url.split("@", 1)[1].split("/", 1)[0]
        services.db = Database(postgres_url.replace(address, f"127.0.0.1:{free_port()}", 1))
        caplog.set_level(logging.INFO, logger="custos.orchestrator")
        try:
            answers = [api.get("/api/v1/me", headers=headers) for _ in range(REQUESTS)]
        finally:
            services.db.dispose()
            services.db = served
        assert {a.status_code for a in answers} == {503}
        details = {a.json()["detail"] for a in answers}
        assert len(details) == 1
        detail = details.pop()
        assert detail.startswith("the database is unavailable: ") and "refused" in detail, detail
        logged = [r.getMessage() for r in caplog.records if r.name == "custos.orchestrator"]
        assert len([m for m in logged if "the database is unavailable" in m]) == 1
        assert api.get("/api/v1/me", headers=headers).status_code == 200
