"""The gateway's crash test hook: one variable names one point of the list, or the start is refused."""

from __future__ import annotations

import pytest

from custos.core.errors import InvalidInput
from custos.gateway.crash import CRASH_ENV, CrashHook, CrashPoint, crash_hook_from_env


def test_a_point_kills_and_stop_colon_point_stops() -> None:
    assert CrashHook.parse("after_commit") == CrashHook(CrashPoint.AFTER_COMMIT)
    assert CrashHook.parse("stop:after_reserve") == CrashHook(CrashPoint.AFTER_RESERVE, stop=True)
    assert crash_hook_from_env({}) is None
    assert crash_hook_from_env({CRASH_ENV: ""}) is None
    assert crash_hook_from_env({CRASH_ENV: "during_upload"}) == CrashHook(CrashPoint.DURING_UPLOAD)


@pytest.mark.parametrize("text", ["after-commit", "stop:", "kill:after_commit", "AFTER_COMMIT"])
def test_an_unknown_point_is_refused_with_the_points_there_are(text: str) -> None:
    """A misspelt point must not start a gateway that never crashes: its test would pass vacuously."""
    with pytest.raises(InvalidInput) as refused:
        crash_hook_from_env({CRASH_ENV: text})
    assert str(refused.value) == (
        f"{CRASH_ENV} must be one of before_reserve, after_reserve, after_compute, after_journal, "
        f"after_commit, during_upload (optionally after 'stop:'), got {text!r}"
    )


def test_another_point_does_nothing() -> None:
    CrashHook(CrashPoint.AFTER_COMMIT).reached(CrashPoint.AFTER_JOURNAL)  # this process goes on
