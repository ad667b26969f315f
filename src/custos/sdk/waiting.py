"""Bounded waits for work that finishes on the orchestrator's side (spec activation, jobs)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from custos.core.errors import CustosError


class WaitTimeout(CustosError):
    """A spec or job did not reach the state waited for in time. Nothing was cancelled."""

    status = 504


def poll_intervals(timeout: float, *, first: float = 0.05, longest: float = 0.5) -> Iterator[None]:
    """Yield until `timeout` seconds have passed, sleeping a little longer before each next poll.

    The first yield is immediate; short first sleeps keep fast work fast, the cap keeps load low.
    """
    deadline = time.monotonic() + timeout
    delay = first
    yield
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, longest)
        yield
