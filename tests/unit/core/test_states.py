"""Every state machine: its table covers its states, its terminal states are declared, and `move`
reads a row's current state, refuses what the table forbids and assigns what it allows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from custos.core.errors import Conflict, InvalidTransition
from custos.core.states import (
    JOB_MACHINE,
    MACHINES,
    SPEC_MACHINE,
    TASK_MACHINE,
    JobState,
    SpecState,
    StateMachine,
    TaskState,
)

each_machine = pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.noun)


@dataclass
class Row:
    id: str
    state: Any


def _reachable(machine: StateMachine[Any], starts: frozenset[Any]) -> set[Any]:
    seen, todo = set(starts), list(starts)
    while todo:
        for target in machine.transitions[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@each_machine
def test_every_state_is_in_the_table(machine: StateMachine[Any]) -> None:
    states = set(machine.states)
    assert set(machine.transitions) == states
    for targets in machine.transitions.values():
        assert targets <= states
    assert machine.initial and machine.initial <= states
    assert machine.terminal <= states


@each_machine
def test_the_terminal_states_are_declared_and_have_no_way_out(machine: StateMachine[Any]) -> None:
    assert machine.terminal == {s for s, targets in machine.transitions.items() if not targets}


@each_machine
def test_every_state_is_reached_from_a_start_and_reaches_an_end(machine: StateMachine[Any]) -> None:
    assert _reachable(machine, machine.initial) == set(machine.states)
    for state in machine.states:
        assert _reachable(machine, frozenset({state})) & machine.terminal, f"{state} never ends"


@each_machine
def test_move_assigns_every_allowed_transition_and_refuses_every_other(machine: StateMachine[Any]) -> None:
    for source in machine.states:
        for target in machine.states:
            row = Row("row_1", source)
            if target in machine.transitions[source]:
                machine.move(row, target)
                assert row.state is target
            else:
                with pytest.raises(InvalidTransition, match=f"row_1 is {source}; it cannot become {target}"):
                    machine.move(row, target)
                assert row.state is source  # nothing half-written


def test_move_reads_the_rows_current_state() -> None:
    spec = Row("spec_1", SpecState.ACTIVE)
    with pytest.raises(InvalidTransition, match="compute spec spec_1 is active; it cannot become activating"):
        SPEC_MACHINE.move(spec, SpecState.ACTIVATING)
    spec.state = SpecState.CREATED
    SPEC_MACHINE.move(spec, SpecState.ACTIVATING)
    assert spec.state is SpecState.ACTIVATING


def test_a_refused_transition_is_a_conflict() -> None:
    assert issubclass(InvalidTransition, Conflict) and InvalidTransition.status == 409
    job = Row("job_1", JobState.SUCCEEDED)
    with pytest.raises(InvalidTransition, match="job job_1 is succeeded; it cannot become cancelled"):
        JOB_MACHINE.move(job, JobState.CANCELLED)


def test_check_names_both_states() -> None:
    TASK_MACHINE.check(TaskState.LEASED, TaskState.PENDING)  # an expired lease goes back to pending
    with pytest.raises(InvalidTransition, match="task is done; it cannot become pending"):
        TASK_MACHINE.check(TaskState.DONE, TaskState.PENDING)
