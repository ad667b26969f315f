"""Wakes long-polling gateways the moment work is queued for them.

Services run in worker threads; the long-poll waits on the event loop. `notify` is thread-safe.
Waiters also re-check the database on a short period, so several orchestrator workers sharing one
database still hand out work (a little later) without a shared notifier.

It also keeps each gateway's newest poll number: a gateway numbers its polls in increasing order, and a
poll older than one already seen was given up on by its gateway (its connection was delayed past the
gateway's wait), so it must lease nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from sqlalchemy.orm import Session

_PENDING = "custos.notify"
# How long a gateway's newest poll number outranks older ones that arrive late.
POLL_MEMORY_S = 120.0


def notify_after_commit(session: Session, gateways: Iterable[str]) -> None:
    """Ask for `gateways` to be woken once this session's transaction has committed."""
    session.info.setdefault(_PENDING, []).extend(gateways)


def pending_notifications(session: Session) -> list[str]:
    """The gateways to wake for this session, taken out of it."""
    return list(session.info.pop(_PENDING, []))


class TaskNotifier:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}
        self._newest_poll: dict[str, tuple[int, float]] = {}  # number, when it arrived (monotonic)
        self.stopping = False

    def stop(self) -> None:
        """The server is shutting down: wake every waiting poll, which then returns without a task, so
        that open long polls end at once instead of holding the shutdown for its grace period. Safe to
        call from a signal handler or another thread."""
        self.stopping = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            for event in list(self._events.values()):
                loop.call_soon_threadsafe(event.set)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _event(self, gateway: str) -> asyncio.Event:
        return self._events.setdefault(gateway, asyncio.Event())

    def poll_arrived(self, gateway: str, poll: int) -> bool:
        """Note the gateway's poll number `poll`; False when a newer poll of the gateway arrived in the
        last `POLL_MEMORY_S` (a live gateway polls far more often): after that, a gateway restarted
        with its clock set back is served again rather than refused for good."""
        now = time.monotonic()
        newest = self._newest_poll.get(gateway)
        if newest is not None and poll < newest[0] and now - newest[1] < POLL_MEMORY_S:
            return False
        self._newest_poll[gateway] = (poll, now)
        return True

    def recent_gateways(self, within_s: float) -> list[str]:
        """The gateways whose newest poll arrived in the last `within_s` seconds."""
        now = time.monotonic()
        return sorted(g for g, (_, seen) in list(self._newest_poll.items()) if now - seen <= within_s)

    def is_newest_poll(self, gateway: str, poll: int) -> bool:
        """Whether `poll` is still the gateway's newest poll: no later one has arrived meanwhile."""
        newest = self._newest_poll.get(gateway)
        return newest is not None and newest[0] == poll

    def notify(self, gateways: Iterable[str]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for gateway in set(gateways):
            loop.call_soon_threadsafe(self._event(gateway).set)

    async def wait(self, gateway: str, timeout: float) -> None:
        event = self._event(gateway)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return
        finally:
            event.clear()
