"""Wake-ups across orchestrator processes on PostgreSQL: a transaction that queues work for a gateway
wakes the polls waiting on another process once it commits, and not if it rolls back."""

from __future__ import annotations

import asyncio

import pytest

from custos.orchestrator.db import Database
from custos.orchestrator.notifier import TaskNotifier
from custos.orchestrator.wakeups import PostgresWakeups, announce


async def woken(notifier: TaskNotifier, gateway: str, within_s: float) -> bool:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await notifier.wait(gateway, within_s)
    return loop.time() - started < within_s


def test_a_committed_announcement_wakes_a_poll_waiting_on_another_process(postgres_url: str) -> None:
    other = Database(postgres_url)  # the process that queues the work
    notifier = TaskNotifier()  # this process's waiting polls

    async def scenario() -> tuple[bool, bool]:
        notifier.bind(asyncio.get_running_loop())
        wakeups = PostgresWakeups(postgres_url, notifier)
        wakeups.start()
        try:
            await asyncio.sleep(1.0)  # listening
            with pytest.raises(RuntimeError), other.session() as session:
                announce(session, ["site-a"])
                raise RuntimeError("rolled back")
            rolled_back = await woken(notifier, "site-a", 2.0)

            def commit() -> None:
                with other.session() as session:
                    announce(session, ["site-a", "site-b"])

            waiting = asyncio.ensure_future(woken(notifier, "site-a", 10.0))
            await asyncio.sleep(0.2)
            await asyncio.to_thread(commit)
            return rolled_back, await waiting
        finally:
            await asyncio.to_thread(wakeups.stop)

    try:
        rolled_back, committed = asyncio.run(scenario())
    finally:
        other.dispose()
    assert not rolled_back, "a rolled-back transaction woke a poll"
    assert committed, "the committed announcement did not wake the poll within 10 s"
