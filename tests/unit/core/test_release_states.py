"""The release state machine: held -> (partially_reviewed ->) released | returned | rejected."""

from __future__ import annotations

import pytest

from custos.core.errors import InvalidTransition
from custos.core.states import RELEASE_MACHINE, RELEASE_TRANSITIONS, ReleaseState

TERMINAL = (ReleaseState.RELEASED, ReleaseState.RETURNED, ReleaseState.REJECTED)


def test_every_release_state_is_in_the_table() -> None:
    assert set(RELEASE_TRANSITIONS) == set(ReleaseState)
    for targets in RELEASE_TRANSITIONS.values():
        assert targets <= set(ReleaseState)


def test_a_held_result_ends_in_one_of_three_ways_with_or_without_a_partial_review() -> None:
    for end in TERMINAL:
        RELEASE_MACHINE.check(ReleaseState.HELD, end)  # release: one, or the first vote says no
        RELEASE_MACHINE.check(ReleaseState.PARTIALLY_REVIEWED, end)
    RELEASE_MACHINE.check(ReleaseState.HELD, ReleaseState.PARTIALLY_REVIEWED)


@pytest.mark.parametrize("end", TERMINAL)
def test_an_ended_review_never_reopens(end: ReleaseState) -> None:
    assert RELEASE_TRANSITIONS[end] == frozenset()
    for target in ReleaseState:
        with pytest.raises(InvalidTransition, match=f"release is {end}; it cannot become {target}"):
            RELEASE_MACHINE.check(end, target)


def test_a_partial_review_does_not_go_back_to_held() -> None:
    with pytest.raises(InvalidTransition):
        RELEASE_MACHINE.check(ReleaseState.PARTIALLY_REVIEWED, ReleaseState.HELD)
    with pytest.raises(InvalidTransition):
        RELEASE_MACHINE.check(ReleaseState.PARTIALLY_REVIEWED, ReleaseState.PARTIALLY_REVIEWED)
