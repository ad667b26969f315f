"""Fixtures of the security tests that run the orchestrator in process: a module lists its people
(`PEOPLE`: name, "user" or "gateway", org, role) and gets their kits, an orchestrator on a fresh
database for each test, and that orchestrator's audit trail. A module may define its own instead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from custos.local.cluster import Cluster
from custos.pki.kit import Kit
from custos.testing.inprocess import orchestrator_in_process, provision_people


@pytest.fixture(scope="module")
def kits(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    people = request.module.PEOPLE
    return provision_people(tmp_path_factory.mktemp("kits") / "project", "security", people)


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path, audit_path: Path) -> Iterator[TestClient]:
    with orchestrator_in_process(kits, tmp_path, audit_path=audit_path) as client:
        yield client


@pytest.fixture(scope="session")
def sdc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Orchestrator + gateways site-a and site-b, each with the cohort of `tests.security.sdc_cohort`
    under each of its disclosure policies, and the researcher alice (university)."""
    from tests.security.sdc_cohort import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("sdc-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()
