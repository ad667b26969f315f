"""Wakes long-polling gateways the moment work is queued for them.

Services run in worker threads; the long-poll waits on the event loop. `notify` is thread-safe.
Waiters also re-check the database on a short period, so several orchestrator workers sharing one
database still hand out work (a little later) without a shared notifier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from sqlalchemy.orm import Session

_PENDING = "custos.notify"


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

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _event(self, gateway: str) -> asyncio.Event:
        return self._events.setdefault(gateway, asyncio.Event())

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
