"""State machines (docs/architecture.md, "State machines"): one enum and one transitions table each;
anything else raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from custos.core.errors import InvalidTransition

S = TypeVar("S", bound=StrEnum)


class Stateful(Protocol[S]):
    """A row that a state machine moves: its id names it in a refusal."""

    @property
    def id(self) -> str: ...

    state: S


@dataclass(frozen=True)
class StateMachine(Generic[S]):
    """One state machine: its states, where a row starts, where each state may go, and where it ends.

    `move` is the only way a row's state changes: it reads the row's current state, so a refused
    transition raises `InvalidTransition` (409) instead of being written."""

    noun: str  # what a row is called in messages
    states: type[S]
    initial: frozenset[S]
    transitions: Mapping[S, frozenset[S]]
    terminal: frozenset[S]

    def can(self, current: S, target: S) -> bool:
        return target in self.transitions[current]

    def check(self, current: S, target: S) -> None:
        if not self.can(current, target):
            raise InvalidTransition(f"{self.noun} is {current}; it cannot become {target}")

    def move(self, row: Stateful[S], target: S) -> None:
        current = row.state
        if not self.can(current, target):
            raise InvalidTransition(f"{self.noun} {row.id} is {current}; it cannot become {target}")
        row.state = target


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


SPEC_MACHINE = StateMachine(
    "compute spec",
    SpecState,
    # A code request's spec is born active: its custodians' signed approvals stand in for activation.
    frozenset({SpecState.CREATED, SpecState.ACTIVE}),
    SPEC_TRANSITIONS,
    frozenset({SpecState.DEACTIVATED, SpecState.FAILED}),
)
JOB_MACHINE = StateMachine(
    "job",
    JobState,
    frozenset({JobState.QUEUED}),
    JOB_TRANSITIONS,
    frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
)
TASK_MACHINE = StateMachine(
    "task",
    TaskState,
    frozenset({TaskState.PENDING}),
    TASK_TRANSITIONS,
    frozenset({TaskState.DONE, TaskState.FAILED}),
)


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


RELEASE_MACHINE = StateMachine(
    "release",
    ReleaseState,
    frozenset({ReleaseState.HELD}),
    RELEASE_TRANSITIONS,
    frozenset({ReleaseState.RELEASED, ReleaseState.RETURNED, ReleaseState.REJECTED}),
)


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


CODE_REQUEST_MACHINE = StateMachine(
    "code request",
    CodeRequestState,
    frozenset({CodeRequestState.PENDING}),
    CODE_REQUEST_TRANSITIONS,
    frozenset({CodeRequestState.APPROVED, CodeRequestState.DENIED}),
)

# Every machine, in the order the architecture document draws them.
MACHINES: tuple[StateMachine[Any], ...] = (
    SPEC_MACHINE,
    JOB_MACHINE,
    TASK_MACHINE,
    RELEASE_MACHINE,
    CODE_REQUEST_MACHINE,
)
