"""The gateway's client of the orchestrator speaks one wire version: it says so on every request, and
refuses a task of another version before it parses it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from custos.core.clock import utcnow
from custos.core.errors import InvalidInput
from custos.core.wire import WIRE_VERSION, WIRE_VERSION_HEADER, Resources, Submitter, TaskAssignment, TaskKind
from custos.gateway.client import OrchestratorClient, read_poll
from custos.pki.kit import Kit
from custos.testing.inprocess import provision_people

TASK = TaskAssignment(
    task_id="task_1", attempt=1, kind=TaskKind.COMPUTE, spec_id="spec_1", job_id="job_1", round=0,
    model="stats@1.0.0", dataset="patients", columns=["age"], params={}, round_input={},
    submitter=Submitter(name="alice", org="university", role="lead_researcher"), resources=Resources(),
)  # fmt: skip


def task_of_version(version: Any, **more: Any) -> dict[str, Any]:
    return TASK.model_dump(mode="json") | {"wire_version": version} | more


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    people = [("site-a", "gateway", "hospital-a", None)]
    return provision_people(tmp_path_factory.mktemp("kits") / "project", "wire", people)["site-a"]


class FakeOrchestrator:
    """Signs the kit's holder in and answers every poll with `task`; keeps every request."""

    def __init__(self, kit: Kit, task: dict[str, Any]) -> None:
        self.kit, self.task = kit, task
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        expires = (utcnow() + timedelta(hours=1)).isoformat()
        if request.url.path == "/api/v1/auth/challenge":
            return httpx.Response(200, json={"challenge_id": "c1", "nonce": "n1", "expires_at": expires})
        if request.url.path == "/api/v1/auth/token":
            who = self.kit.identity
            grant = {"token": "t1", "expires_at": expires, "name": who.name, "org": who.org}
            return httpx.Response(200, json=grant | {"role": who.role.value})
        assert request.url.path == "/api/v1/gateway/tasks/next"
        return httpx.Response(200, json={"task": self.task})


def test_every_request_says_the_wire_version_and_a_task_of_it_is_taken(kit: Kit) -> None:
    orchestrator = FakeOrchestrator(kit, task_of_version(WIRE_VERSION))
    client = OrchestratorClient(kit, poll_wait_s=0, transport=httpx.MockTransport(orchestrator))
    try:
        assert client.next_task() == TASK
    finally:
        client.close()
    (poll,) = [r for r in orchestrator.requests if not r.url.path.startswith("/api/v1/auth/")]
    assert poll.headers[WIRE_VERSION_HEADER] == str(WIRE_VERSION)


def test_a_task_of_another_wire_version_is_refused_before_it_is_parsed(kit: Kit) -> None:
    # A newer task may carry fields this gateway does not know: the version is what it is told.
    newer = task_of_version(WIRE_VERSION + 1, priority="high")
    client = OrchestratorClient(
        kit, poll_wait_s=0, transport=httpx.MockTransport(FakeOrchestrator(kit, newer))
    )
    try:
        with pytest.raises(InvalidInput) as refused:
            client.next_task()
    finally:
        client.close()
    assert refused.value.message == (
        f"the orchestrator speaks wire version '{WIRE_VERSION + 1}', but this gateway speaks wire "
        f"version {WIRE_VERSION}: run the same Custos release at both ends"
    )


def test_a_poll_without_a_task_or_a_task_without_a_version() -> None:
    assert read_poll({"task": None}) is None
    assert read_poll({"task": task_of_version(WIRE_VERSION)}) == TASK
    unversioned = TASK.model_dump(mode="json")
    del unversioned["wire_version"]
    with pytest.raises(InvalidInput, match=r"^the orchestrator speaks no wire version, but this gateway"):
        read_poll({"task": unversioned})
