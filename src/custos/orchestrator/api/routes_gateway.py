"""Routes for gateways: publish datasets and policies, long-poll for tasks, report results."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from custos.core.errors import Conflict, PermissionDenied
from custos.core.wire import (
    MAX_POLL_NUMBER,
    Ack,
    GatewayPublish,
    Heartbeat,
    PollRequest,
    PollResponse,
    TaskAssignment,
    TaskResultUpload,
    TaskStanding,
    WireModel,
)
from custos.orchestrator.api.context import (
    BLOB_ANSWER,
    OCTET_STREAM,
    RAW_BODY,
    BlobDigest,
    GatewayDep,
    Services,
    ServicesDep,
)
from custos.orchestrator.api.responses import refusals

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/gateway", tags=["gateway"])

# Waiters re-check the database this often, for work queued by another orchestrator worker.
RECHECK_S = 0.5


class TaskStart(WireModel):
    attempt: int


@router.post("/publish")
def publish(body: GatewayPublish, caller: GatewayDep, services: ServicesDep) -> Ack:
    services.run(lambda s: services.datasets.publish(s, caller.identity.name, body))
    return Ack()


# The tasks a polling gateway still works on; its other open leases were lost and are reclaimed.
HeldTasks = Annotated[tuple[str, ...], Query(description="tasks the gateway still works on")]
# The jobs the polling gateway keeps a sandboxed runtime for; the answer says which have ended.
RunningJobs = Annotated[
    tuple[str, ...], Query(max_length=64, description="jobs with a runtime at the gateway")
]


@router.get("/tasks/next")
async def next_task(
    request: Request,
    caller: GatewayDep,
    services: ServicesDep,
    wait: float = Query(default=20.0, ge=0, le=60),
    gateway: str | None = Query(default=None, description="if given, must be the caller's own name"),
    held: HeldTasks = (),
    poll: int | None = Query(
        default=None, ge=0, le=MAX_POLL_NUMBER, description="the poll's number; each gateway's increase"
    ),
    running: RunningJobs = (),
) -> PollResponse:
    """The gateway's next task, waiting up to `wait` seconds for one: the poll of a gateway that sends
    no heartbeat (`POST` is the same poll with one)."""
    if gateway is not None and gateway != caller.identity.name:
        raise PermissionDenied(f"gateway {caller.identity.name} may not poll for tasks of {gateway}")
    return await _poll(
        request,
        caller.identity.name,
        services,
        PollRequest(wait=wait, held=list(held), poll=poll, running=list(running)),
    )


@router.post("/tasks/next")
async def next_task_with_heartbeat(
    request: Request, body: PollRequest, caller: GatewayDep, services: ServicesDep
) -> PollResponse:
    """The gateway's next task, as `GET`, with its heartbeat (version, tasks in flight) recorded first."""
    return await _poll(request, caller.identity.name, services, body)


@router.post("/heartbeat")
def heartbeat(body: Heartbeat, caller: GatewayDep, services: ServicesDep) -> Ack:
    """A gateway busy with a task, and so not polling, says it is alive: its leases are extended."""
    name = caller.identity.name

    def beat(session: Session) -> None:
        services.sites.seen(session, name, body)
        services.tasks.extend_leases(session, name)

    services.run(beat)
    return Ack()


async def _poll(request: Request, name: str, services: Services, body: PollRequest) -> PollResponse:
    """A poll the gateway has given up on leases nothing: one numbered before a poll of the gateway that
    already arrived (its connection was delayed past the gateway's wait), one overtaken by a newer poll
    while it waits, and one whose client has disconnected. So only the gateway's live poll leases, and
    its `held` list, the tasks the gateway still works on, is the only one that reclaims leases.
    The answer names which of the `running` jobs (those the gateway keeps a runtime for) have ended.
    """
    poll, held = body.poll, tuple(body.held)

    def arrive(session: Session) -> bool:
        if poll is not None and not services.polls.arrived(session, name, poll):
            return False
        services.sites.seen(session, name, body.heartbeat)
        return True

    if not await run_in_threadpool(services.run, arrive):
        return PollResponse(task=None)
    services.notifier.saw(name)
    log.debug("long poll %s from %s: open (wait %g s)", poll, name, body.wait)
    with services.metrics.long_poll_open():
        task = await _wait_for_task(request, services, name, held, poll, body.wait)
    log.debug("long poll %s from %s: %s", poll, name, f"task {task.task_id}" if task else "no task")
    running = tuple(body.running)
    ended = await run_in_threadpool(services.run, lambda s: services.tasks.ended_jobs(s, name, running))
    return PollResponse(task=task, ended_jobs=ended)


async def _wait_for_task(
    request: Request, services: Services, name: str, held: tuple[str, ...], poll: int | None, wait: float
) -> TaskAssignment | None:
    notifier = services.notifier
    deadline = time.monotonic() + min(wait, services.settings.long_poll_max_s)

    def lease(session: Session) -> tuple[bool, TaskAssignment | None]:
        # Checked in the lease's own transaction: on any orchestrator process, an overtaken poll
        # leases nothing.
        if poll is not None and not services.polls.is_newest(session, name, poll):
            return True, None
        return False, services.tasks.lease(session, name, held)

    while True:
        # A server shutting down hands out no more work: the poll returns, and the shutdown is prompt.
        if notifier.stopping or await request.is_disconnected():
            return None
        overtaken, task = await run_in_threadpool(services.run, lease)
        remaining = deadline - time.monotonic()
        if overtaken or task is not None or remaining <= 0:
            return task
        await notifier.wait(name, min(RECHECK_S, remaining))


@router.get("/tasks/{task_id}")
def task_standing(task_id: str, caller: GatewayDep, services: ServicesDep) -> TaskStanding:
    """Whether the gateway should go on with a task it runs; it asks while the task's sandbox works."""
    return services.run(lambda s: services.tasks.standing(s, caller.identity.name, task_id))


@router.post("/tasks/{task_id}/start", responses=refusals(Conflict))
def start_task(task_id: str, body: TaskStart, caller: GatewayDep, services: ServicesDep) -> Ack:
    return services.run(lambda s: services.tasks.start(s, caller.identity.name, task_id, body.attempt))


@router.post("/tasks/{task_id}/result", responses=refusals(Conflict))
def task_result(task_id: str, body: TaskResultUpload, caller: GatewayDep, services: ServicesDep) -> Ack:
    name = caller.identity.name

    def record(session: Session) -> Ack:
        services.sites.seen(session, name)
        if body.audit_head is not None:
            services.anchors.record(session, name, body.audit_head)
        ack = services.tasks.record_result(session, name, task_id, body)
        if body.ledger is not None:
            services.reconciler.reconcile(session, name, body.ledger)
        return ack

    return services.run(record)


@router.get("/tasks/{task_id}/blobs/{digest}", response_class=Response, responses=BLOB_ANSWER)
def get_task_blob(task_id: str, digest: BlobDigest, caller: GatewayDep, services: ServicesDep) -> Response:
    """A blob the task's round input refers to, as raw bytes."""
    name = caller.identity.name
    data = services.run(lambda s: services.tasks.round_input_blob(s, name, task_id, digest))
    return Response(content=data, media_type=OCTET_STREAM)


@router.put(
    "/tasks/{task_id}/blobs/{digest}",
    responses=refusals(Conflict),
    openapi_extra={"requestBody": RAW_BODY},
)
async def put_task_blob(
    task_id: str, digest: BlobDigest, request: Request, caller: GatewayDep, services: ServicesDep
) -> Ack:
    """A blob of the task's result, as raw bytes, before the result that refers to it."""
    data = await request.body()
    name = caller.identity.name
    return await run_in_threadpool(
        services.run, lambda s: services.tasks.put_blob(s, name, task_id, digest, data)
    )
