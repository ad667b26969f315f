"""Jobs and their tasks: what a researcher submits and reads back, and what the orchestrator hands a
gateway (`TaskAssignment`) and takes back from it (`TaskResultUpload`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from custos.core.states import JobState, TaskState
from custos.core.wire.audit import AuditHead
from custos.core.wire.budget import LedgerReport
from custos.core.wire.datasets import SignedPolicy
from custos.core.wire.resources import Resources
from custos.core.wire.version import WIRE_VERSION
from custos.core.wire_base import WireModel


class TaskKind(StrEnum):
    PREPARE = "prepare"  # a gateway validates a spec being activated
    COMPUTE = "compute"  # a gateway runs one round of a job


class JobCreate(WireModel):
    spec_id: str
    params: dict[str, Any] = Field(default_factory=dict)


class TaskPublic(WireModel):
    id: str
    gateway: str
    dataset: str
    kind: TaskKind
    round: int
    state: TaskState
    attempt: int
    error: str | None


class JobSummary(WireModel):
    """A job as a list shows it: everything but its tasks."""

    id: str
    spec_id: str
    model: str
    state: JobState
    round: int
    reason: str | None
    submitter: str
    org: str
    created_at: datetime
    finished_at: datetime | None


class JobPublic(JobSummary):
    tasks: list[TaskPublic]
    waiting: list[str] = Field(
        default_factory=list,
        description="while the job is open, each offline site it waits for, e.g. "
        "'waiting for site-b, offline since 2026-12-06 10:02 UTC'",
    )


class JobPage(WireModel):
    """One page of `GET /api/v1/jobs`, newest first. `next_cursor`, when set, fetches the next page
    (pass it as `cursor`); None on the last page."""

    jobs: list[JobSummary]
    next_cursor: str | None


class JobResult(WireModel):
    job_id: str
    model: str
    result: dict[str, Any]


class Submitter(WireModel):
    name: str
    org: str
    role: str


class TaskAssignment(WireModel):
    """One unit of work handed to a gateway. The gateway re-checks all of it against its own policy."""

    wire_version: int = WIRE_VERSION
    task_id: str
    attempt: int
    kind: TaskKind
    spec_id: str
    job_id: str | None
    round: int
    model: str
    dataset: str = Field(description="the dataset's name at this gateway")
    columns: list[str]
    params: dict[str, Any]
    round_input: dict[str, Any]
    submitter: Submitter
    resources: Resources
    audit_event: str | None = Field(default=None, description="the orchestrator's audit event for the lease")
    policy: SignedPolicy | None = Field(
        default=None, description="the newest signed policy the orchestrator holds for the dataset"
    )


class PollResponse(WireModel):
    task: TaskAssignment | None
    # Of the jobs the poll said this gateway keeps a runtime for (`running=`), those that have ended
    # (cancelled, failed or finished): the gateway ends their runtimes now.
    ended_jobs: list[str] = Field(default_factory=list)


class TaskStanding(WireModel):
    """What the orchestrator says of a task a gateway is running: `stop`, when set, is why its result
    is no longer wanted (its job was cancelled or failed), and the gateway ends its sandbox."""

    task_id: str
    state: TaskState
    attempt: int
    stop: str | None


class TaskResultUpload(WireModel):
    """Idempotent on (task id, attempt, digest): a repeat is acknowledged, a different digest refused."""

    attempt: int
    status: Literal["done", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=4000)
    digest: str
    audit_head: AuditHead | None = Field(
        default=None, description="the head of the gateway's audit trail as it sends the result"
    )
    ledger: LedgerReport | None = Field(default=None, description="its privacy budget ledger, if it has one")


class Ack(WireModel):
    ok: bool = True
    duplicate: bool = False


def result_digest(status: str, result: dict[str, Any] | None, error: str | None) -> str:
    """The digest a gateway sends with a result upload; the orchestrator recomputes it."""
    from custos.core.digest import json_digest

    return json_digest({"status": status, "result": result, "error": error})
