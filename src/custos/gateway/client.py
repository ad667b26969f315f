"""The gateway's only way to reach the orchestrator: a small HTTPS client. Outbound only.

Every request says which wire version this gateway speaks (the orchestrator refuses another), and
every task the orchestrator hands out must be of that version (`read_poll` refuses another)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

import httpx

from custos.core.blobs import Blobs, internalize, refs_in
from custos.core.errors import ERRORS_BY_STATUS, CustosError
from custos.core.wire import (
    WIRE_VERSION,
    WIRE_VERSION_HEADER,
    Ack,
    GatewayPublish,
    Heartbeat,
    ModelArchive,
    PollRequest,
    PollResponse,
    TaskAssignment,
    TaskResultUpload,
    TaskStanding,
    check_wire_version,
)
from custos.pki.kit import Kit
from custos.pki.signin import KitAuth
from custos.pki.tls import client_ssl_context


class OrchestratorUnreachable(CustosError):
    """The orchestrator did not answer; the agent backs off and tries again."""


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if response.status_code >= 500:
            raise OrchestratorUnreachable(f"orchestrator error {response.status_code}: {detail}")
        raise ERRORS_BY_STATUS.get(response.status_code, CustosError)(str(detail))
    return response.json()


_JSON = {"content-type": "application/json"}


def _halves(body: bytes, midway: Callable[[], None]) -> Iterator[bytes]:
    """`body` in two chunks, calling `midway` once the first has been sent."""
    yield body[: len(body) // 2]
    midway()
    yield body[len(body) // 2 :]


def read_poll(data: Any) -> TaskAssignment | None:
    """The task in a poll's answer. Its wire version is checked before the task is parsed, so that a
    task of another version is refused as that, not as a malformed task."""
    task = data.get("task") if isinstance(data, dict) else None
    if isinstance(task, dict):
        check_wire_version(task.get("wire_version"), sender="the orchestrator", receiver="this gateway")
    return PollResponse.model_validate(data).task


class OrchestratorClient:
    def __init__(self, kit: Kit, *, poll_wait_s: float, transport: httpx.BaseTransport | None = None) -> None:
        """`transport` replaces the network, for tests (e.g. `httpx.MockTransport`)."""
        self._poll_wait_s = poll_wait_s
        self._poll_number = 0
        self._http = self._client(kit, transport, read_s=poll_wait_s + 15.0)
        # The task watch asks from another thread while a task runs: its own connection and sign-in
        # (a KitAuth serves one thread).
        self._watch_http = self._client(kit, transport, read_s=10.0)

    @staticmethod
    def _client(kit: Kit, transport: httpx.BaseTransport | None, *, read_s: float) -> httpx.Client:
        return httpx.Client(
            base_url=kit.config.orchestrator_url,
            verify=client_ssl_context(kit),
            auth=KitAuth(kit),
            timeout=httpx.Timeout(10.0, read=read_s),
            headers={WIRE_VERSION_HEADER: str(WIRE_VERSION)},
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()
        self._watch_http.close()

    def _call(self, method: str, path: str, *, http: httpx.Client | None = None, **kwargs: Any) -> Any:
        try:
            return _check((http or self._http).request(method, path, **kwargs))
        except httpx.TransportError as exc:
            raise OrchestratorUnreachable(f"orchestrator unreachable: {exc}") from exc

    def publish(self, body: GatewayPublish) -> None:
        self._call("POST", "/api/v1/gateway/publish", json=body.model_dump(mode="json", by_alias=True))

    def revocation_list(self) -> str | None:
        """The project's revocation list as the orchestrator relays it (its CA signature is checked by
        whoever uses it)."""
        data = self._call("GET", "/api/v1/crl")
        pem = data.get("crl_pem") if isinstance(data, dict) else None
        return pem if isinstance(pem, str) else None

    def _next_poll_number(self) -> int:
        """Increasing within this process, and (from the clock) above a previous process's numbers."""
        self._poll_number = max(time.time_ns(), self._poll_number + 1)
        return self._poll_number

    def next_task(
        self, held: Collection[str] = (), heartbeat: Heartbeat | None = None
    ) -> TaskAssignment | None:
        """The next task (see `poll`)."""
        return self.poll(held, heartbeat=heartbeat).task

    def poll(
        self,
        held: Collection[str] = (),
        running: Collection[str] = (),
        heartbeat: Heartbeat | None = None,
    ) -> PollResponse:
        """The next task, with the blobs its round input refers to fetched and checked (as bytes), and
        which of the `running` jobs (those this gateway keeps a runtime for) have ended.

        `held` lists the tasks this gateway still works on: the orchestrator reclaims its other leases.
        Each poll is numbered, so that a poll this client gave up on (its connection delayed past the
        wait) leases nothing when it reaches the orchestrator after a newer one. The poll carries the
        gateway's `heartbeat`."""
        body = PollRequest(
            wait=self._poll_wait_s,
            poll=self._next_poll_number(),
            held=sorted(held),
            running=sorted(running),
            heartbeat=heartbeat,
        )
        data = self._call("POST", "/api/v1/gateway/tasks/next", json=body.model_dump(mode="json"))
        task = read_poll(data)
        ended = data.get("ended_jobs", []) if isinstance(data, dict) else []
        if task is None or not refs_in(task.round_input):
            return PollResponse(task=task, ended_jobs=ended)
        round_input = internalize(task.round_input, lambda digest, _size: self._blob(task.task_id, digest))
        return PollResponse(task=task.model_copy(update={"round_input": round_input}), ended_jobs=ended)

    def heartbeat(self, heartbeat: Heartbeat) -> None:
        """Say this gateway is alive while a task keeps it from polling."""
        self._call("POST", "/api/v1/gateway/heartbeat", json=heartbeat.model_dump(mode="json"))

    def _blob(self, task_id: str, digest: str) -> bytes:
        try:
            response = self._http.get(f"/api/v1/gateway/tasks/{task_id}/blobs/{digest}")
        except httpx.TransportError as exc:
            raise OrchestratorUnreachable(f"orchestrator unreachable: {exc}") from exc
        if response.status_code >= 400:
            _check(response)
        return response.content

    def put_blob(self, task_id: str, digest: str, data: bytes) -> None:
        self._call(
            "PUT",
            f"/api/v1/gateway/tasks/{task_id}/blobs/{digest}",
            content=data,
            headers={"content-type": "application/octet-stream"},
        )

    def standing(self, task_id: str) -> TaskStanding:
        """Whether the orchestrator still wants the task's result (`stop` says why not). Safe to call
        from the task watch's thread while the agent's thread waits on the task."""
        data = self._call("GET", f"/api/v1/gateway/tasks/{task_id}", http=self._watch_http)
        return TaskStanding.model_validate(data)

    def start(self, task: TaskAssignment) -> None:
        self._call("POST", f"/api/v1/gateway/tasks/{task.task_id}/start", json={"attempt": task.attempt})

    def upload(
        self,
        task_id: str,
        upload: TaskResultUpload,
        blobs: Blobs | None = None,
        *,
        midway: Callable[[], None] | None = None,
    ) -> Ack:
        """The task's result; first the blobs it refers to, each sent once. `midway` (a crash test's
        hook) is called once half of the result's body is on the wire."""
        for digest, blob in (blobs or {}).items():
            self.put_blob(task_id, digest, blob)
        path = f"/api/v1/gateway/tasks/{task_id}/result"
        if midway is None:
            data = self._call("POST", path, json=upload.model_dump(mode="json"))
        else:
            body = json.dumps(upload.model_dump(mode="json")).encode()
            data = self._call("POST", path, content=_halves(body, midway), headers=_JSON)
        return Ack.model_validate(data)

    def model_archive(self, name: str, version: str) -> ModelArchive:
        """A published model's archive and signature, as relayed: the caller verifies both."""
        return ModelArchive.model_validate(self._call("GET", f"/api/v1/models/{name}/{version}/archive"))
