"""The gateway's crash test hook: the steps of a task at which a crash test has the gateway end itself,
all listed here, in the order a DP task passes them. Never set in production.

`CUSTOS_TEST_CRASH_AT=<point>` (read once when the gateway starts) makes the gateway kill itself with
SIGKILL at that point, as a power cut would end it: no clean-up, no `finally`. `stop:<point>` stops it
there with SIGSTOP instead, for a test to act while the gateway is mid-task (stop the orchestrator, say)
and then let it go on with SIGCONT.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from custos.core.errors import InvalidInput

CRASH_ENV = "CUSTOS_TEST_CRASH_AT"
_STOP = "stop:"


class CrashPoint(StrEnum):
    BEFORE_RESERVE = "before_reserve"  # the task checked; nothing reserved
    AFTER_RESERVE = "after_reserve"  # the budget reserved; the sandbox not yet asked
    AFTER_COMPUTE = "after_compute"  # the result computed and filtered; not journaled
    AFTER_JOURNAL = "after_journal"  # the result journaled (fsynced); the reservation not committed
    AFTER_COMMIT = "after_commit"  # the reservation committed; nothing uploaded
    DURING_UPLOAD = "during_upload"  # half of the result's request body sent


@dataclass(frozen=True)
class CrashHook:
    point: CrashPoint
    stop: bool = False  # SIGSTOP (a test continues the gateway with SIGCONT) instead of SIGKILL

    @classmethod
    def parse(cls, text: str) -> CrashHook:
        stop = text.startswith(_STOP)
        name = text.removeprefix(_STOP)
        try:
            return cls(CrashPoint(name), stop=stop)
        except ValueError:
            points = ", ".join(p.value for p in CrashPoint)
            raise InvalidInput(
                f"{CRASH_ENV} must be one of {points} (optionally after {_STOP!r}), got {text!r}"
            ) from None

    def reached(self, point: CrashPoint) -> None:
        """End (or stop) this process if `point` is the hook's."""
        if point is self.point:
            os.kill(os.getpid(), signal.SIGSTOP if self.stop else signal.SIGKILL)


def crash_hook_from_env(environ: Mapping[str, str]) -> CrashHook | None:
    """The hook `CUSTOS_TEST_CRASH_AT` names, or None when it is unset or empty."""
    text = environ.get(CRASH_ENV)
    return CrashHook.parse(text) if text else None


def reached(hook: CrashHook | None, point: CrashPoint) -> None:
    """The task has reached `point`: end the gateway there if the test hook says so."""
    if hook is not None:
        hook.reached(point)
