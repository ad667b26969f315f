"""Wakes long-polling gateways the moment work is queued for them.

Services run in worker threads; the long-poll waits on the event loop. `notify` is thread-safe.
Within one process a commit wakes its waiters directly. Across processes (several workers or hosts on
one PostgreSQL database) the committing transaction also sends `NOTIFY custos_tasks` with the gateways'
names, which PostgreSQL delivers only if it commits, and each process's `PostgresWakeups` thread
LISTENs and wakes its own waiters. Waiters also re-check the database on a short period, so a lost
notification costs a little latency, never a task. Each gateway's newest poll number lives in the
database (services/polls.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from sqlalchemy.orm import Session

_PENDING = "custos.notify"
# The PostgreSQL channel that carries wake-ups between orchestrator processes.
CHANNEL = "custos_tasks"


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
        self._seen: dict[str, float] = {}  # gateway: when its newest poll arrived (monotonic)
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

    def saw(self, gateway: str) -> None:
        """A poll of the gateway reached this process (for the `custos_gateways_online` gauge)."""
        self._seen[gateway] = time.monotonic()

    def recent_gateways(self, within_s: float) -> list[str]:
        """The gateways whose newest poll reached this process in the last `within_s` seconds."""
        now = time.monotonic()
        return sorted(g for g, seen in list(self._seen.items()) if now - seen <= within_s)

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
