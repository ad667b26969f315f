"""State machines (docs/architecture.md, "State machines"): one enum and one transitions table each;
anything else raises."""

from __future__ import annotations

from enum import StrEnum

from custos.core.errors import InvalidTransition


class SpecState(StrEnum):
    CREATED = "created"
    ACTIVATING = "activating"
    ACTIVE = "active"
    DEACTIVATING = "deactivating"
    DEACTIVATED = "deactivated"
    FAILED = "failed"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_RELEASE = "awaiting_release"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskState(StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


SPEC_TRANSITIONS: dict[SpecState, frozenset[SpecState]] = {
    SpecState.CREATED: frozenset({SpecState.ACTIVATING, SpecState.FAILED}),
    SpecState.ACTIVATING: frozenset({SpecState.ACTIVE, SpecState.FAILED}),
    SpecState.ACTIVE: frozenset({SpecState.DEACTIVATING, SpecState.FAILED}),
    SpecState.DEACTIVATING: frozenset({SpecState.DEACTIVATED, SpecState.FAILED}),
    SpecState.DEACTIVATED: frozenset(),
    SpecState.FAILED: frozenset(),
}

JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {JobState.AWAITING_RELEASE, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    ),
    JobState.AWAITING_RELEASE: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset({TaskState.LEASED, TaskState.FAILED}),
    # An expired lease returns the task to pending (bounded retries).
    TaskState.LEASED: frozenset({TaskState.RUNNING, TaskState.DONE, TaskState.FAILED, TaskState.PENDING}),
    TaskState.RUNNING: frozenset({TaskState.DONE, TaskState.FAILED, TaskState.PENDING}),
    TaskState.DONE: frozenset(),
    TaskState.FAILED: frozenset(),
}


def check_spec_transition(current: SpecState, target: SpecState) -> None:
    if target not in SPEC_TRANSITIONS[current]:
        raise InvalidTransition(f"compute spec is {current}; it cannot become {target}")


def check_job_transition(current: JobState, target: JobState) -> None:
    if target not in JOB_TRANSITIONS[current]:
        raise InvalidTransition(f"job is {current}; it cannot become {target}")


def check_task_transition(current: TaskState, target: TaskState) -> None:
    if target not in TASK_TRANSITIONS[current]:
        raise InvalidTransition(f"task is {current}; it cannot become {target}")


class ReleaseState(StrEnum):
    """A held result under output review (docs/architecture.md, "Release review")."""

    HELD = "held"
    PARTIALLY_REVIEWED = "partially_reviewed"  # some, not all, of the required approvals are in
    RELEASED = "released"
    RETURNED = "returned"  # sent back to the researcher with a reason; the result is not released
    REJECTED = "rejected"


RELEASE_TRANSITIONS: dict[ReleaseState, frozenset[ReleaseState]] = {
    # held -> released directly when the policy asks for one reviewer.
    ReleaseState.HELD: frozenset(
        {
            ReleaseState.PARTIALLY_REVIEWED,
            ReleaseState.RELEASED,
            ReleaseState.RETURNED,
            ReleaseState.REJECTED,
        }
    ),
    ReleaseState.PARTIALLY_REVIEWED: frozenset(
        {ReleaseState.RELEASED, ReleaseState.RETURNED, ReleaseState.REJECTED}
    ),
    ReleaseState.RELEASED: frozenset(),
    ReleaseState.RETURNED: frozenset(),
    ReleaseState.REJECTED: frozenset(),
}


def check_release_transition(current: ReleaseState, target: ReleaseState) -> None:
    if target not in RELEASE_TRANSITIONS[current]:
        raise InvalidTransition(f"release is {current}; it cannot become {target}")


class CodeRequestState(StrEnum):
    """A custom code request under custodian review (docs/architecture.md, "Custom code review").
    A change to the code is a new request: an approval is bound to one digest."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


CODE_REQUEST_TRANSITIONS: dict[CodeRequestState, frozenset[CodeRequestState]] = {
    CodeRequestState.PENDING: frozenset({CodeRequestState.APPROVED, CodeRequestState.DENIED}),
    CodeRequestState.APPROVED: frozenset(),
    CodeRequestState.DENIED: frozenset(),
}


def check_code_request_transition(current: CodeRequestState, target: CodeRequestState) -> None:
    if target not in CODE_REQUEST_TRANSITIONS[current]:
        raise InvalidTransition(f"code request is {current}; it cannot become {target}")
