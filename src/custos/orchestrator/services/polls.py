"""Each gateway's newest poll number, kept in the database so that every orchestrator process (workers
of one host, or hosts behind a load balancer on one PostgreSQL database) knows it.

A gateway numbers its polls in increasing order. A poll older than one already seen was given up on by
its gateway (its connection was delayed past the gateway's wait), so it must lease nothing; nor does a
poll overtaken by a newer one while it waits. A number is remembered for `POLL_MEMORY_S`: after that, a
gateway restarted with its clock set back is served again rather than refused for good.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.orchestrator.tables import GatewayPoll

# How long a gateway's newest poll number outranks older ones that arrive late (a live gateway polls
# far more often).
POLL_MEMORY_S = 120.0


class PollService:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def arrived(self, session: Session, gateway: str, poll: int) -> bool:
        """Note the gateway's poll number `poll`; False when a newer poll of the gateway arrived in the
        last `POLL_MEMORY_S`. The row is locked until the transaction ends, so of two processes noting
        polls of one gateway at once, the second sees the first's number."""
        now = self._clock()
        row = session.get(GatewayPoll, gateway, with_for_update=True)
        if row is None:
            session.add(GatewayPoll(gateway=gateway, poll=poll, arrived_at=now))
            session.flush()
            return True
        if poll < row.poll and now - row.arrived_at < timedelta(seconds=POLL_MEMORY_S):
            return False
        row.poll, row.arrived_at = poll, now
        return True

    def is_newest(self, session: Session, gateway: str, poll: int) -> bool:
        """Whether `poll` is still the gateway's newest poll. Read under a shared lock, so that a lease
        in the same transaction commits before a newer poll of the gateway can be noted (which then
        reclaims the lease if the gateway does not hold it)."""
        newest = session.execute(
            select(GatewayPoll.poll).where(GatewayPoll.gateway == gateway).with_for_update(read=True)
        ).scalar()
        return newest == poll
