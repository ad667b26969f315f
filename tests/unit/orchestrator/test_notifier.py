"""Each gateway's newest poll number, kept in the database: an older poll that arrives late is refused
for a while, on every orchestrator process (two `Database`s on one database stand for two processes)."""

from __future__ import annotations

from datetime import datetime, timedelta

from custos.core.clock import utcnow
from custos.orchestrator.db import Database, migrate
from custos.orchestrator.services.polls import POLL_MEMORY_S, PollService


class StepClock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def test_a_late_poll_is_refused_on_another_process_and_a_newer_one_overtakes_a_waiting_poll(
    database_url: str,
) -> None:
    first, second = Database(database_url), Database(database_url)
    migrate(first.engine)
    polls = PollService(utcnow)
    try:
        with first.session() as s:
            assert polls.arrived(s, "site-a", 5)
        with second.session() as s:
            assert polls.is_newest(s, "site-a", 5), "the other process knows poll 5"
            assert not polls.arrived(s, "site-a", 3), "numbered before poll 5: given up on"
            assert polls.arrived(s, "site-b", 1), "each gateway has its own numbers"
        with first.session() as s:
            assert polls.is_newest(s, "site-a", 5)
            assert polls.arrived(s, "site-a", 7)
        with second.session() as s:
            assert not polls.is_newest(s, "site-a", 5), "poll 5, still waiting, was overtaken"
            assert not polls.is_newest(s, "site-c", 1), "a poll never noted is no gateway's newest"
    finally:
        first.dispose()
        second.dispose()


def test_a_gateway_restarted_with_its_clock_set_back_is_served_again_after_a_while(database_url: str) -> None:
    db = Database(database_url)
    migrate(db.engine)
    clock = StepClock()
    polls = PollService(clock)
    try:
        with db.session() as s:
            assert polls.arrived(s, "site-a", 900)
        clock.now += timedelta(seconds=POLL_MEMORY_S - 1)
        with db.session() as s:
            assert not polls.arrived(s, "site-a", 100)
        clock.now += timedelta(seconds=2)
        with db.session() as s:
            assert polls.arrived(s, "site-a", 100)
            assert polls.is_newest(s, "site-a", 100)
    finally:
        db.dispose()
