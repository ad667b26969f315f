"""Everything that crosses a process boundary over HTTP, as frozen, versioned pydantic models.

The orchestrator, the gateways, the SDK and the CLI share these models and nothing else.
Identity is never a field here that the server trusts: it comes from the caller's verified token.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from custos.core.schema import DatasetSchema
from custos.core.states import JobState, SpecState, TaskState

WIRE_VERSION = 1
AUTH_DOMAIN = b"custos-auth-v1"


class WireModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def auth_message(challenge_id: str, nonce: str, fingerprint: str) -> bytes:
    """The bytes a caller signs to prove it holds its certificate's key."""
    return b"\n".join([AUTH_DOMAIN, challenge_id.encode(), nonce.encode(), fingerprint.encode()])


# --- authentication -------------------------------------------------------------------------------


class ChallengeRequest(WireModel):
    certificate_pem: str = Field(max_length=16_384)


class Challenge(WireModel):
    challenge_id: str
    nonce: str
    expires_at: datetime


class TokenRequest(WireModel):
    challenge_id: str = Field(max_length=128)
    certificate_pem: str = Field(max_length=16_384)
    signature: str = Field(max_length=1_024, description="base64 signature of auth_message(...)")


class TokenGrant(WireModel):
    token: str
    expires_at: datetime
    name: str
    org: str
    role: str


class Me(WireModel):
    name: str
    org: str
    role: str
    fingerprint: str


# --- resources ------------------------------------------------------------------------------------


class Resources(WireModel):
    """Sandbox limits a compute spec asks for. The gateway caps them with its own maxima."""

    cpu_seconds: int = Field(default=120, ge=1, le=86_400)
    memory_mb: int = Field(default=4096, ge=64, le=262_144)
    wall_seconds: int = Field(default=300, ge=1, le=86_400)
    max_processes: int = Field(default=256, ge=1, le=4096)
    output_mb: int = Field(default=16, ge=1, le=1024)


# --- datasets -------------------------------------------------------------------------------------


class DatasetPublish(WireModel):
    """What a gateway tells the orchestrator about one dataset. Never the file's location."""

    name: str
    description: str = ""
    dataset_schema: DatasetSchema = Field(alias="schema")
    row_count: int = Field(ge=0, description="rounded to the nearest 10")
    mock_arrow_b64: str = Field(description="Arrow IPC stream of the mock table, base64")
    policy_yaml: str | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class GatewayPublish(WireModel):
    datasets: list[DatasetPublish] = Field(max_length=1000)


class DatasetInfo(WireModel):
    id: str
    gateway: str
    name: str
    description: str
    dataset_schema: DatasetSchema = Field(alias="schema")
    row_count: int
    policy_yaml: str | None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class MockTable(WireModel):
    dataset: str
    mock_arrow_b64: str


# --- compute specs --------------------------------------------------------------------------------


class SpecCreate(WireModel):
    name: str = Field(min_length=1, max_length=200)
    model: str = Field(description="name@version, e.g. stats@1.0.0")
    datasets: list[str] = Field(min_length=1, max_length=100, description="gateway/dataset")
    columns: list[str] = Field(min_length=1, max_length=1000)
    resources: Resources = Resources()


class SpecPublic(WireModel):
    id: str
    name: str
    model: str
    datasets: list[str]
    columns: list[str]
    resources: Resources
    state: SpecState
    reason: str | None
    owner: str
    org: str
    created_at: datetime


# --- jobs and tasks -------------------------------------------------------------------------------


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


class JobPublic(WireModel):
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
    tasks: list[TaskPublic]


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


class PollResponse(WireModel):
    task: TaskAssignment | None


class TaskResultUpload(WireModel):
    """Idempotent on (task id, attempt, digest): a repeat is acknowledged, a different digest refused."""

    attempt: int
    status: Literal["done", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=4000)
    digest: str


class Ack(WireModel):
    ok: bool = True
    duplicate: bool = False


class ErrorBody(WireModel):
    detail: str


def result_digest(status: str, result: dict[str, Any] | None, error: str | None) -> str:
    """The digest a gateway sends with a result upload; the orchestrator recomputes it."""
    from custos.core.digest import json_digest

    return json_digest({"status": status, "result": result, "error": error})
