"""Audit anchors in process: each new head a gateway reports is kept; a head that goes back or names
another line at an anchored index is written to the orchestrator's own trail, and the anchors stay;
only the gateway's org admins and project admins read them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.unit.orchestrator.test_api import bearer, kits

from custos.audit import read_events
from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.kit import Kit

__all__ = ["kits"]  # the module's fixture, used here

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path) -> Iterator[TestClient]:
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", audit_path=tmp_path / "a.log"
    )
    with TestClient(create_app(settings, kits["orchestrator"].root_certificate)) as client:
        yield client


def beat(api: TestClient, gw: dict[str, str], index: int, hash_: str) -> None:
    body = {"version": "0.1.0", "tasks_in_flight": 0, "audit_head": {"index": index, "hash": hash_}}
    assert api.post("/api/v1/gateway/heartbeat", json=body, headers=gw).status_code == 200


def test_heads_are_kept_and_contradictions_recorded(
    api: TestClient, kits: dict[str, Kit], tmp_path: Path
) -> None:
    gw, admin = bearer(api, kits["site-a"]), bearer(api, kits["admin-a"])
    beat(api, gw, 3, H1)
    beat(api, gw, 5, H2)
    beat(api, gw, 5, H2)  # the same head again: nothing new
    anchors = api.get("/api/v1/audit/anchors/site-a", headers=admin).json()
    assert [(a["index"], a["hash"]) for a in anchors] == [(3, H1), (5, H2)]

    beat(api, gw, 4, H3)  # went back: cut
    beat(api, gw, 5, H3)  # another line at an anchored index: rewritten
    anchors = api.get("/api/v1/audit/anchors/site-a", headers=admin).json()
    assert [(a["index"], a["hash"]) for a in anchors] == [(3, H1), (5, H2)]
    events = [(e.user, e.action) for e in read_events(tmp_path / "a.log")]
    assert ("site-a", "audit_trail_shortened") in events and ("site-a", "audit_trail_rewritten") in events


def test_who_reads_the_anchors(api: TestClient, kits: dict[str, Kit]) -> None:
    beat(api, bearer(api, kits["site-a"]), 1, H1)
    alice, admin = bearer(api, kits["alice"]), bearer(api, kits["admin-a"])
    assert api.get("/api/v1/audit/anchors/site-a", headers=alice).status_code in (403, 404)
    assert api.get("/api/v1/audit/anchors/orchestrator", headers=admin).status_code == 404
    r = api.get("/api/v1/audit/anchors/site-z", headers=admin)
    assert r.status_code == 404 and "no audit anchor for site-z" in r.json()["detail"]
    bad = {"version": "0.1.0", "tasks_in_flight": 0, "audit_head": {"index": 1, "hash": "not-hex"}}
    r = api.post("/api/v1/gateway/heartbeat", json=bad, headers=bearer(api, kits["site-a"]))
    assert r.status_code == 400 and "hash" in r.json()["detail"]
