"""The orchestrator's tables (SQLAlchemy 2). Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from custos.core.states import CodeRequestState, JobState, ReleaseState, SpecState, TaskState

E = TypeVar("E", bound=StrEnum)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every database (SQLite keeps no zone, so it is stored naive in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use custos.core.clock.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def state_type(states: type[E], length: int) -> Enum:
    """A state column typed as its enum, stored as the enum's values in a VARCHAR(`length`): the
    schema stays portable (no native enum type, no CHECK constraint), and a value outside the enum
    is refused before it reaches the database."""
    return Enum(
        states,
        native_enum=False,
        create_constraint=False,
        values_callable=lambda e: [m.value for m in e],
        length=length,
        validate_strings=True,
    )


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Org(Base):
    __tablename__ = "orgs"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    org: Mapped[str] = mapped_column(ForeignKey("orgs.name"))
    role: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64))
    last_seen: Mapped[datetime]
    # The serial of the certificate the user last signed in with: a revoked one ends their sessions
    # and API tokens too.
    cert_serial: Mapped[str | None] = mapped_column(String(64), default=None)


class Gateway(Base):
    """A site's gateway: who it is (from its certificate at sign-in) and its health, from the heartbeat
    each poll carries (`services/sites.py`)."""

    __tablename__ = "gateways"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    org: Mapped[str] = mapped_column(ForeignKey("orgs.name"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    last_seen: Mapped[datetime]
    version: Mapped[str | None] = mapped_column(String(40), default=None)
    tasks_in_flight: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The head of its privacy budget ledger, and when the mirror was last reconciled to it.
    ledger_head: Mapped[int | None] = mapped_column(Integer, default=None)
    ledger_reported_at: Mapped[datetime | None] = mapped_column(default=None)


class Dataset(Base):
    """Metadata, public schema and mock only: the data and its location stay at the gateway."""

    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(130), primary_key=True)  # gateway/name
    gateway: Mapped[str] = mapped_column(ForeignKey("gateways.name"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    schema_json: Mapped[dict[str, Any]]
    row_count: Mapped[int] = mapped_column(Integer)
    mock_arrow_b64: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class Policy(Base):
    """The newest signed asset policy for a dataset, as an org admin pushed it or its gateway published
    it. The orchestrator verified it on the way in; gateways verify it again before they use it."""

    __tablename__ = "policies"
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    policy_yaml: Mapped[str] = mapped_column(Text)
    signed_json: Mapped[dict[str, Any]]
    issued_at: Mapped[datetime]
    signer: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime]


class RevocationList(Base):
    """The project's certificate revocation list (an X.509 CRL signed by the root CA): one row."""

    __tablename__ = "revocation_lists"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    crl_pem: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class Model(Base):
    __tablename__ = "models"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # builtin | package (custos.core.wire.ModelKind)
    description: Mapped[str] = mapped_column(Text, default="")


class ComputeSpec(Base):
    __tablename__ = "specs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(100))
    datasets: Mapped[list[str]]
    columns: Mapped[list[str]]
    resources: Mapped[dict[str, Any]]
    state: Mapped[SpecState] = mapped_column(state_type(SpecState, 16))
    reason: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(128))
    org: Mapped[str] = mapped_column(String(64))
    owner_role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Job(Base):
    __tablename__ = "jobs"
    # The job list's order and cursor (services/job_list.py).
    __table_args__ = (Index("ix_jobs_created_at_id", "created_at", "id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    spec_id: Mapped[str] = mapped_column(ForeignKey("specs.id"), index=True)
    model: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]]
    state: Mapped[JobState] = mapped_column(state_type(JobState, 20))
    round: Mapped[int] = mapped_column(Integer, default=0)
    model_state: Mapped[dict[str, Any]]
    min_count: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    submitter: Mapped[str] = mapped_column(String(128))
    org: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_gateway_state", "gateway", "state"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    spec_id: Mapped[str] = mapped_column(ForeignKey("specs.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    gateway: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(64))
    round: Mapped[int] = mapped_column(Integer, default=0)
    round_input: Mapped[dict[str, Any]]
    state: Mapped[TaskState] = mapped_column(state_type(TaskState, 16))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_expires_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_digest: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Result(Base):
    __tablename__ = "results"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    result: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class AuthChallenge(Base):
    __tablename__ = "auth_challenges"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    used: Mapped[bool] = mapped_column(default=False)


class AuthToken(Base):
    """A short-lived bearer token bound to the certificate that proved possession of its key."""

    __tablename__ = "auth_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    org: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    cert_serial: Mapped[str | None] = mapped_column(String(64), default=None)  # hex, for revocation


# --- human sign-in: passwords, browser sessions, API tokens, failed attempts ----------------------


class PasswordHash(Base):
    """A user's web password as an Argon2id hash; set only while signed in with the user's kit."""

    __tablename__ = "passwords"
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name", ondelete="CASCADE"), primary_key=True)
    hash: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime]


class WebSession(Base):
    """A browser session opened with a password. Only the SHA-256 of the cookie's value is kept."""

    __tablename__ = "sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ApiTokenRecord(Base):
    """A long-lived token for the SDK. Only its SHA-256 is kept; the token is shown once."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class SignInFailure(Base):
    """One failed sign-in by one method, counted for the rate limit against a client address or an
    account (`scope`: "address" or "account"; `key`: the address or the account name)."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_key", "scope", "key", "method", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]


# --- output release review ------------------------------------------------------------------------


class Release(Base):
    """A finished job's result held for review by the reviewers of its datasets' orgs, each org
    approving its own part."""

    __tablename__ = "releases"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), unique=True)
    state: Mapped[ReleaseState] = mapped_column(state_type(ReleaseState, 24), index=True)
    required: Mapped[int] = mapped_column(Integer)  # distinct approvals needed: every org's together
    orgs: Mapped[list[str]]  # the orgs whose reviewers must each approve their part (release_parts)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ReleasePartRecord(Base):
    """One org's part of a release: how many distinct approvals that org's reviewers must give."""

    __tablename__ = "release_parts"
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), primary_key=True)
    org: Mapped[str] = mapped_column(String(64), primary_key=True)
    required: Mapped[int] = mapped_column(Integer)  # 1 or 2


class ReleaseReview(Base):
    """One reviewer's vote on a release, for their org's part. A person votes at most once on each
    release."""

    __tablename__ = "release_reviews"
    __table_args__ = (UniqueConstraint("release_id", "reviewer", name="uq_release_reviews_reviewer"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    org: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))  # approve | return | reject
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


# --- audit trail anchors -------------------------------------------------------------------------


class AuditAnchor(Base):
    """A head of an audit trail as it was seen: a gateway's (`trail` is its name), reported with its
    results and heartbeats, or the orchestrator's own (`orchestrator`). Kept apart from the trails
    themselves, so that cutting a trail's end is found (`services/anchors.py`)."""

    __tablename__ = "audit_anchors"
    trail: Mapped[str] = mapped_column(String(64), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime]


# --- privacy budget mirror ------------------------------------------------------------------------


class BudgetMirror(Base):
    """A read-only copy, for display, of what a researcher (kind `researcher`) or an organisation
    (kind `org`) has spent on a dataset, as its gateway reported it in a DP task's result. The
    gateway's ledger is the authority; nothing here is ever used to allow or refuse a job."""

    __tablename__ = "budget_mirror"
    dataset: Mapped[str] = mapped_column(String(130), primary_key=True)  # gateway/name
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # researcher | org
    subject: Mapped[str] = mapped_column(String(128), primary_key=True)  # the researcher or the org
    org: Mapped[str] = mapped_column(String(64), index=True)  # the subject's org
    dataset_org: Mapped[str] = mapped_column(String(64), index=True)  # the org that holds the dataset
    spent_epsilon: Mapped[float]
    spent_delta: Mapped[float]
    cap_epsilon: Mapped[float]
    cap_delta: Mapped[float]
    updated_at: Mapped[datetime]


class BudgetHistory(Base):
    """Each change of a `budget_mirror` row, as it was written: the figures after the change and
    what moved them (`cause`: the job whose DP result reported them, or the gateway's ledger report).
    Only for display (the portal's budget page charts it); the gateways' ledgers stay the authority."""

    __tablename__ = "budget_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    dataset: Mapped[str] = mapped_column(String(130), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(128))
    org: Mapped[str] = mapped_column(String(64))
    dataset_org: Mapped[str] = mapped_column(String(64))
    spent_epsilon: Mapped[float]
    spent_delta: Mapped[float]
    cap_epsilon: Mapped[float]
    cap_delta: Mapped[float]
    cause: Mapped[str] = mapped_column(String(160))


# --- model registry: signed model packages --------------------------------------------------------


class ModelPackage(Base):
    """A published model archive (its `models` row has kind `package`). The orchestrator verified the
    signature and the archive on the way in; gateways verify both again before they unpack it."""

    __tablename__ = "model_packages"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    archive: Mapped[bytes] = mapped_column(LargeBinary)
    manifest_json: Mapped[dict[str, Any]]
    signer: Mapped[str] = mapped_column(String(128))
    signer_org: Mapped[str] = mapped_column(String(64))
    signer_certificate_pem: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(1024))
    published_at: Mapped[datetime]
    # A confidential package's signed terms (custos.core.wire.ConfidentialTerms); `archive` is then
    # ciphertext and `digest` its SHA-256.
    confidential_json: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)


# --- custom code requests -------------------------------------------------------------------------


class CodeRequest(Base):
    """A researcher's exact source, bound to its SHA-256 digest, waiting for (or past) custodian review.
    Never edited: a change to the code is a new request."""

    __tablename__ = "code_requests"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    function: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(Text)  # empty for a package
    digest: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    datasets: Mapped[list[str]]
    orgs: Mapped[list[str]]  # the orgs whose custodians must each approve
    output: Mapped[str] = mapped_column(String(16))  # table | json
    state: Mapped[CodeRequestState] = mapped_column(state_type(CodeRequestState, 16), index=True)
    author: Mapped[str] = mapped_column(String(128))
    org: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    # A package's deterministic archive (custos.computations.custom.code_package); its digest is `digest`.
    archive: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    # The author's run on the mock tables (custos.core.wire.MockRun as JSON), unverified; none if not sent.
    mock_run: Mapped[str | None] = mapped_column(Text, deferred=True)


class CodeReviewRecord(Base):
    """One custodian's decision on a code request, for their org; an approval keeps its signed record."""

    __tablename__ = "code_reviews"
    __table_args__ = (UniqueConstraint("request_id", "org", name="uq_code_reviews_org"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("code_requests.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    org: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))  # approve | deny
    reason: Mapped[str] = mapped_column(Text, default="")
    approval_json: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]


# --- blobs: binary payloads of a job, by content ----------------------------------------------------


class Blob(Base):
    """A binary payload of a job (model weights, file outputs), named by its SHA-256. Messages carry a
    reference ({"$blob": digest, "size": n}); the bytes are in a blob store (a file in the blob folder,
    or a `BlobBytes` row: services/blob_stores.py), and this row is its index. Both go when nothing
    of the job refers to the blob."""

    __tablename__ = "blobs"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class BlobBytes(Base):
    """A blob's bytes, where the orchestrator keeps them in the database (`DatabaseBlobStore`): so that
    several orchestrator processes on one PostgreSQL database reach every blob."""

    __tablename__ = "blob_bytes"
    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class GatewayPoll(Base):
    """Each gateway's newest poll number, shared by every orchestrator process (`services/polls.py`)."""

    __tablename__ = "gateway_polls"
    gateway: Mapped[str] = mapped_column(String(64), primary_key=True)
    poll: Mapped[int] = mapped_column(BigInteger)
    arrived_at: Mapped[datetime]


# --- released custom code logs ----------------------------------------------------------------------


class ReleasedLog(Base):
    """The full log of one failed custom code task attempt, released to the job's researcher by a
    custodian of the gateway's org. Never edited: releasing the same attempt again changes nothing."""

    __tablename__ = "released_logs"
    __table_args__ = (UniqueConstraint("task_id", "attempt", name="uq_released_logs_attempt"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    gateway: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(64))
    log: Mapped[str] = mapped_column(Text)
    released_by: Mapped[str] = mapped_column(String(128))
    org: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
