"""The orchestrator refuses a caller that speaks another wire version, with a 400 and a JSON detail,
before it authenticates or reads anything; a caller of its version, or one that names none (a
browser), is served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from custos.core.wire import WIRE_VERSION, WIRE_VERSION_HEADER
from custos.pki.kit import Kit
from custos.testing.inprocess import bearer, orchestrator_in_process, provision_people

OTHER = str(WIRE_VERSION + 1)
REFUSED = (
    f"the caller speaks wire version '{OTHER}', but this orchestrator speaks wire version {WIRE_VERSION}: "
    "run the same Custos release at both ends"
)


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    people = [("site-a", "gateway", "hospital-a", None)]
    return provision_people(tmp_path_factory.mktemp("kits") / "project", "wire", people)


@pytest.fixture
def api(kits: dict[str, Kit], tmp_path: Path) -> Iterator[TestClient]:
    with orchestrator_in_process(kits, tmp_path) as client:
        yield client


def test_a_caller_of_another_wire_version_is_refused_with_a_json_detail(api: TestClient) -> None:
    response = api.get("/healthz", headers={WIRE_VERSION_HEADER: OTHER})
    assert response.status_code == 400
    assert response.json() == {"detail": REFUSED}
    garbled = api.get("/healthz", headers={WIRE_VERSION_HEADER: "one"})
    assert garbled.status_code == 400
    assert "the caller speaks wire version 'one'" in garbled.json()["detail"]


def test_the_version_is_checked_before_authentication(api: TestClient, kits: dict[str, Kit]) -> None:
    # No token at all: another version is still told as that, not as a missing sign-in.
    anonymous = api.get("/api/v1/gateway/tasks/next", headers={WIRE_VERSION_HEADER: OTHER})
    assert (anonymous.status_code, anonymous.json()) == (400, {"detail": REFUSED})
    headers = bearer(api, kits["site-a"])
    refused = api.get(
        "/api/v1/gateway/tasks/next", params={"wait": 0}, headers={**headers, WIRE_VERSION_HEADER: OTHER}
    )
    assert (refused.status_code, refused.json()) == (400, {"detail": REFUSED})
    served = api.get(
        "/api/v1/gateway/tasks/next",
        params={"wait": 0},
        headers={**headers, WIRE_VERSION_HEADER: str(WIRE_VERSION)},
    )
    assert (served.status_code, served.json()) == (200, {"task": None, "ended_jobs": []})


def test_a_caller_that_names_no_version_is_served(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    same = api.get("/healthz", headers={WIRE_VERSION_HEADER: str(WIRE_VERSION)})
    assert (same.status_code, same.json()) == (200, {"status": "ok"})
