"""Everything that crosses a process boundary over HTTP, as frozen, versioned pydantic models.

The orchestrator, the gateways, the SDK and the CLI share these models and nothing else.
Identity is never a field here that the server trusts: it comes from the caller's verified token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from custos.core.schema import DatasetSchema
from custos.core.states import CodeRequestState, JobState, ReleaseState, SpecState, TaskState
from custos.core.wire_base import WireModel as WireModel

WIRE_VERSION = 1
AUTH_DOMAIN = b"custos-auth-v1"


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


class SignedPolicy(WireModel):
    """An asset policy as an org admin of the dataset's org signed it (`custos policy sign`).

    The signature covers `policy_message(dataset, issued_at, policy_yaml)`. Whoever relays it (the
    orchestrator) cannot change a byte of it, nor pass an older one off as newer: gateways keep the
    newest `issued_at` they have accepted per dataset."""

    dataset: str = Field(max_length=200, description="gateway/dataset")
    policy_yaml: str = Field(max_length=256 * 1024)
    issued_at: datetime
    signer_certificate_pem: str = Field(max_length=16 * 1024)
    signature: str = Field(max_length=1024, description="base64 DER ECDSA-SHA256")


def policy_message(dataset: str, issued_at: datetime, policy_yaml: str) -> bytes:
    """The bytes a policy signature covers."""
    text_digest = hashlib.sha256(policy_yaml.encode("utf-8")).hexdigest()
    return f"custos-policy-v1\n{dataset}\n{issued_at.isoformat()}\n{text_digest}".encode()


class DatasetPublish(WireModel):
    """What a gateway tells the orchestrator about one dataset. Never the file's location."""

    name: str
    description: str = ""
    dataset_schema: DatasetSchema = Field(alias="schema")
    row_count: int = Field(ge=0, description="rounded to the nearest 10")
    mock_arrow_b64: str = Field(description="Arrow IPC stream of the mock table, base64")
    policy: SignedPolicy | None = None

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
    policy_signer: str | None = None
    policy_issued_at: datetime | None = None
    owner_org: str = Field(default="", description="the publishing gateway's org, from its certificate")

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


class AuditEventPublic(WireModel):
    """One line of the orchestrator's audit trail, as the audit API returns it."""

    line: int
    id: str
    time: datetime
    user: str
    action: str
    job: str | None
    peer: str | None
    message: str


class UserPublic(WireModel):
    name: str
    org: str
    role: str
    last_seen: datetime


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


# --- users and tokens ---

API_TOKEN_PREFIX = "cst_"  # noqa: S105 - how an API token begins, not a secret


class PasswordSet(WireModel):
    """A user's new web password. Accepted only from a user signed in with the kit."""

    password: str = Field(min_length=12, max_length=1024)


class PasswordLogin(WireModel):
    name: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class ApiTokenCreate(WireModel):
    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@-]*$",
        description="a label to recognise the token by, e.g. laptop",
    )
    days: int = Field(default=90, ge=1, le=365, description="days until the token expires")


class ApiTokenPublic(WireModel):
    id: str
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None


class ApiToken(ApiTokenPublic):
    """A new API token. `token` is shown this once: the orchestrator keeps only its hash."""

    token: str = Field(description=f"{API_TOKEN_PREFIX} followed by 43 random URL-safe characters")


# --- release review -------------------------------------------------------------------------------


class ReleaseDecision(StrEnum):
    APPROVE = "approve"
    RETURN = "return"  # send the result back to the researcher with a reason; it is not released
    REJECT = "reject"


class ReleaseVoteCreate(WireModel):
    """A reviewer's vote. A reason is required to return or reject, and kept with an approval."""

    reason: str = Field(default="", max_length=4000)


class ReleaseVote(WireModel):
    reviewer: str
    org: str
    decision: ReleaseDecision
    reason: str
    created_at: datetime


class ReleasePublic(WireModel):
    """A job's result held for review, without the result."""

    id: str
    job_id: str
    job_state: JobState
    state: ReleaseState
    model: str
    submitter: str
    submitter_org: str
    datasets: list[str]
    orgs: list[str] = Field(description="the orgs whose reviewers may vote")
    required: int = Field(description="distinct approvals needed to release")
    approvals: int
    reason: str | None
    created_at: datetime
    updated_at: datetime


class ReleaseDetail(ReleasePublic):
    """What a reviewer decides on: the held result and the spec and parameters that made it."""

    spec_id: str
    params: dict[str, Any]
    columns: list[str]
    result: dict[str, Any]
    votes: list[ReleaseVote]


# --- privacy budget: the orchestrator's mirror and the cost preview --------------------------------


class BudgetStanding(BaseModel):
    """What a gateway puts under `budget` in a DP task's result: the submitter's standing on the
    dataset after the task. Fields a newer gateway adds are ignored, so the mirror keeps working."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    spent_epsilon: float = Field(ge=0)
    cap_epsilon: float = Field(ge=0)
    remaining_epsilon: float = Field(ge=0)
    spent_delta: float = Field(default=0.0, ge=0)
    cap_delta: float = Field(default=0.0, ge=0)
    remaining_delta: float = Field(default=0.0, ge=0)


class BudgetPublic(WireModel):
    """One row of the orchestrator's read-only budget mirror: what a researcher (`kind` researcher)
    or an organisation (`kind` org) has spent on a dataset, as of `updated_at`. The gateway's
    ledger is the authority; the mirror is for display."""

    dataset: str
    kind: Literal["researcher", "org"]
    subject: str = Field(description="the researcher's name, or the org's")
    org: str = Field(description="the subject's org")
    spent_epsilon: float
    cap_epsilon: float
    remaining_epsilon: float
    spent_delta: float
    cap_delta: float
    remaining_delta: float
    updated_at: datetime


class DatasetCostPreview(WireModel):
    """What a job would spend on one dataset, and what would remain of the submitter's budget."""

    dataset: str
    dp: bool = Field(description="false: the dataset's policy has no differential privacy; nothing is spent")
    mechanism: str | None = None
    queries: int = 0
    epsilon: float = 0.0
    delta: float = 0.0
    cap_epsilon: float | None = Field(default=None, description="the researcher's cap")
    cap_delta: float | None = None
    remaining_epsilon: float | None = Field(default=None, description="before the job, per the mirror")
    remaining_delta: float | None = None
    mirrored: bool = Field(
        default=False, description="false: nothing is mirrored yet for you here, so the full cap is shown"
    )
    would_exceed: bool = False


class JobPreview(WireModel):
    """A job's cost, computed from the datasets' policies without running or recording anything."""

    spec_id: str
    model: str
    datasets: list[DatasetCostPreview]


# --- model registry -------------------------------------------------------------------------------

MODEL_ARCHIVE_B64_CHARS = 11_200_000  # base64 of the 8 MiB a model archive may have


class ModelKind(StrEnum):
    BUILTIN = "builtin"  # shipped with Custos (custos.computations)
    PACKAGE = "package"  # a signed archive a publisher uploaded (`custos model publish`)


def model_message(name: str, version: str, digest: str) -> bytes:
    """The bytes a model package signature covers: the archive's SHA-256 bound to name and version."""
    return f"custos-model-v1\n{name}\n{version}\n{digest}".encode()


class ModelSignature(WireModel):
    """A publisher's signature over `model_message(name, version, digest)`, made with their kit key."""

    name: str = Field(max_length=64)
    version: str = Field(max_length=32)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the archive, hex")
    signer_certificate_pem: str = Field(max_length=16 * 1024)
    signature: str = Field(max_length=1024, description="base64 DER ECDSA-SHA256")


class ModelPublish(ModelSignature):
    archive_b64: str = Field(max_length=MODEL_ARCHIVE_B64_CHARS)


class ModelArchive(ModelSignature):
    """A published archive as gateways and users fetch it; they verify it before anything else."""

    signer: str
    published_at: datetime
    archive_b64: str = Field(max_length=MODEL_ARCHIVE_B64_CHARS)


class ModelPublic(WireModel):
    name: str
    version: str
    kind: ModelKind
    description: str
    digest: str | None = None
    size: int | None = None
    signer: str | None = None
    signer_org: str | None = None
    published_at: datetime | None = None


class ModelDetail(ModelPublic):
    """One registry entry; for a package, its manifest (entrypoint, parameters, columns, outputs)."""

    manifest: dict[str, Any] | None = None


# --- custom code requests -------------------------------------------------------------------------

CUSTOM_MODEL = "custom@1.0.0"  # the model name and version a custom code job runs as
MAX_CODE_CHARS = 256 * 1024
CODE_APPROVAL_DOMAIN = "custos-code-approval-v1"
MAX_PACKAGE_BYTES = 1024 * 1024  # a code package's archive; its base64 fits the API's body limit
# What custom code returns: a DataFrame, a dict, or the bytes of a file of one allowed type, which the
# gateway recognises from the bytes (custos.computations.custom_files; its FILE_TYPES are these).
CodeOutput = Literal["table", "json", "file:csv", "file:json", "file:parquet", "file:pdf", "file:png"]
CodeDecision = Literal["approve", "deny"]
CodeKind = Literal["function", "package"]
# A function's name, or a package's entrypoint `module.path:function`.
CODE_FUNCTION = r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:)?[A-Za-z_][A-Za-z0-9_]*$"


def code_digest(source: str) -> str:
    """The SHA-256 of a code request's exact source (UTF-8): what an approval is bound to."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def package_digest(archive: bytes) -> str:
    """The SHA-256 of a code package's exact archive bytes: what an approval of a package binds."""
    return hashlib.sha256(archive).hexdigest()


def _check_b64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("package_b64 is not base64") from None
    return value


PackageB64 = Annotated[
    str,
    Field(min_length=4, max_length=4 * -(-MAX_PACKAGE_BYTES // 3), description="a code package's archive"),
    AfterValidator(_check_b64),
]


class CodeSource(WireModel):
    """Exactly one of: a module's `source`, or a package's deterministic archive (`package_b64`, see
    `custos.registry.code_package`). The digest an approval binds is that of the one given."""

    source: str = Field(default="", max_length=MAX_CODE_CHARS, description="the exact module source")
    package_b64: PackageB64 | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CodeSource:
        if bool(self.source) == (self.package_b64 is not None):
            raise ValueError("give either source (a module's text) or package_b64 (a package's archive)")
        return self

    @property
    def kind(self) -> CodeKind:
        return "package" if self.package_b64 is not None else "function"

    def archive(self) -> bytes:
        """The package's archive bytes; b"" for a function's source."""
        return b"" if self.package_b64 is None else base64.b64decode(self.package_b64)

    def computed_digest(self) -> str:
        """The SHA-256 of exactly the code given, recomputed from its bytes."""
        if self.package_b64 is not None:
            return package_digest(self.archive())
        return code_digest(self.source)


class CodeRequestCreate(CodeSource):
    """A researcher's Python function, to run as `function(dal, datasets, params)` on `datasets`; or
    a package, whose manifest names the function (its entrypoint), the parameters and the output."""

    function: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$",
        description="the function to call; a package's comes from its manifest",
    )
    datasets: list[str] = Field(min_length=1, max_length=50, description="gateway/dataset")
    params: dict[str, Any] = Field(default_factory=dict)
    output: CodeOutput | None = Field(
        default=None,
        description="table (a DataFrame), json (a dict) or file:TYPE (bytes, e.g. file:png); a package's "
        "comes from its manifest",
    )


class CodeApproval(WireModel):
    """What a custodian's signature binds: this exact code (by digest), function, parameters, output
    type, datasets and author. A gateway runs custom code only with one it can verify."""

    request_id: str = Field(max_length=40)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    function: str = Field(max_length=100)
    params_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    output: CodeOutput
    datasets: list[str] = Field(max_length=50)
    author: str = Field(max_length=128)
    author_org: str = Field(max_length=64)
    approved_at: datetime


def code_approval_message(approval: CodeApproval) -> bytes:
    """The bytes an approval's signature covers."""
    from custos.core.digest import canonical_json

    return CODE_APPROVAL_DOMAIN.encode() + b"\n" + canonical_json(approval.model_dump(mode="json"))


class SignedCodeApproval(WireModel):
    approval: CodeApproval
    signer_certificate_pem: str = Field(max_length=16 * 1024)
    signature: str = Field(max_length=1024, description="base64 DER ECDSA-SHA256")


class CodeReviewCreate(WireModel):
    """A custodian's decision. To approve, send the approval signed with your kit's key."""

    reason: str = Field(default="", max_length=2000)
    approval: SignedCodeApproval | None = None


class CodeReview(WireModel):
    reviewer: str
    org: str
    decision: CodeDecision
    reason: str
    created_at: datetime


class CodeRequestPublic(WireModel):
    id: str
    state: CodeRequestState
    kind: CodeKind = "function"
    function: str = Field(description="the function called; for a package, its entrypoint")
    digest: str
    datasets: list[str]
    params: dict[str, Any]
    output: CodeOutput
    author: str
    org: str
    orgs: list[str] = Field(description="the orgs whose custodians must each approve")
    reviews: list[CodeReview]
    reason: str | None
    created_at: datetime
    decided_at: datetime | None


class CodeRequestDetail(CodeRequestPublic):
    source: str = Field(description="a function's exact module source; empty for a package")
    package_b64: str | None = Field(default=None, description="a package's exact archive")
    approvals: list[SignedCodeApproval] = Field(default_factory=list)

    def code(self) -> CodeSource:
        """The code as stored, to recompute its digest from (what a reviewer approves)."""
        return CodeSource(source=self.source, package_b64=self.package_b64)


class CustomCodeTask(CodeSource):
    """What a custom code task carries in its `round_input["code"]`: the source or the package's
    archive, and every approval, so that the gateway can check the code it is handed is the code its
    custodian approved."""

    request_id: str = Field(max_length=40)
    function: str = Field(max_length=100, pattern=CODE_FUNCTION)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    output: CodeOutput
    approvals: list[SignedCodeApproval] = Field(max_length=50)


# --- released custom code logs --------------------------------------------------------------------

# A custom code task's full log as its gateway keeps it (the tail, when longer), and as released.
MAX_CODE_LOG_BYTES = 64 * 1024


def _check_log_bytes(value: str) -> str:
    size = len(value.encode("utf-8"))
    if size > MAX_CODE_LOG_BYTES:
        raise ValueError(f"the log has {size} bytes (UTF-8), over the cap of {MAX_CODE_LOG_BYTES}")
    return value


class ReleasedLogCreate(WireModel):
    """A custodian's release of one custom code task's full log, as the gateway `gateway` kept it."""

    gateway: str = Field(min_length=1, max_length=64)
    task_id: str = Field(min_length=1, max_length=40)
    attempt: int = Field(ge=1, le=1000)
    log: Annotated[str, Field(max_length=MAX_CODE_LOG_BYTES), AfterValidator(_check_log_bytes)]


class ReleasedLogPublic(WireModel):
    """A released log, as the job's researcher reads it."""

    job_id: str
    gateway: str
    dataset: str
    task_id: str
    attempt: int
    log: str
    released_by: str
    org: str
    released_at: datetime
