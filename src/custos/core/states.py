"""State machines (DESIGN.md section 4): one enum and one transitions table each; anything else raises."""

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
