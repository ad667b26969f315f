from __future__ import annotations

import pytest

from custos.core.errors import InvalidTransition
from custos.core.states import (
    JOB_TRANSITIONS,
    SPEC_TRANSITIONS,
    TASK_TRANSITIONS,
    JobState,
    SpecState,
    TaskState,
    check_job_transition,
    check_spec_transition,
    check_task_transition,
)


def test_every_state_has_a_transitions_entry() -> None:
    assert set(SPEC_TRANSITIONS) == set(SpecState)
    assert set(JOB_TRANSITIONS) == set(JobState)
    assert set(TASK_TRANSITIONS) == set(TaskState)


def test_terminal_states_have_no_way_out() -> None:
    for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        assert JOB_TRANSITIONS[state] == frozenset()
    assert TASK_TRANSITIONS[TaskState.DONE] == frozenset()


def test_allowed_transitions_pass_and_others_raise() -> None:
    check_spec_transition(SpecState.CREATED, SpecState.ACTIVATING)
    check_job_transition(JobState.QUEUED, JobState.RUNNING)
    check_task_transition(TaskState.LEASED, TaskState.PENDING)
    with pytest.raises(InvalidTransition, match="created; it cannot become active"):
        check_spec_transition(SpecState.CREATED, SpecState.ACTIVE)
    with pytest.raises(InvalidTransition):
        check_job_transition(JobState.SUCCEEDED, JobState.RUNNING)
    with pytest.raises(InvalidTransition):
        check_task_transition(TaskState.DONE, TaskState.PENDING)
