"""Site health: what each gateway's heartbeat says (version, tasks in flight) and when it was last seen.

A gateway is seen whenever it polls (`POST .../tasks/next` carries its heartbeat; the older `GET` only
moves `last_seen`), when it uploads a result, and, while a task keeps it from polling, by the heartbeat
it sends on its own every poll wait (`POST .../heartbeat`). So a gateway that is up is never unseen for
longer than one long poll; one not seen for `offline_after_s` (the longest poll plus a margin,
`OrchestratorSettings`) is offline, since the last time it was seen.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.core.states import JobState
from custos.core.wire import DatasetInfo, Heartbeat, JobPublic, LedgerReport, SitePublic
from custos.orchestrator.services.anchors import AnchorService
from custos.orchestrator.services.tasks import OPEN_STATES
from custos.orchestrator.tables import Gateway


def offline_since(gateway: Gateway, now: datetime, offline_after_s: float) -> datetime | None:
    """When the gateway was last seen, if that was longer than `offline_after_s` ago; else None."""
    if now - gateway.last_seen > timedelta(seconds=offline_after_s):
        return gateway.last_seen
    return None


def offline_note(gateway: str, since: datetime) -> str:
    """How a job or a dataset says that its site is offline, e.g. `site-b, offline since 10:02`."""
    return f"{gateway}, offline since {since:%Y-%m-%d %H:%M} UTC"


class SiteService:
    def __init__(self, clock: Clock, offline_after_s: float, anchors: AnchorService) -> None:
        self._clock = clock
        self.offline_after_s = offline_after_s
        self._anchors = anchors
        # Reconciles the budget mirror to a ledger report (`budget_reconciliation.py`). Set by the app.
        self.reconcile_budget: Callable[[Session, str, LedgerReport], None] | None = None

    def seen(self, session: Session, name: str, heartbeat: Heartbeat | None = None) -> None:
        """Record that the gateway `name` (signed in, so its row exists) is alive, with what its
        heartbeat says when it sent one."""
        gateway = session.get(Gateway, name)
        if gateway is None:
            return
        gateway.last_seen = self._clock()
        if heartbeat is not None:
            gateway.version = heartbeat.version
            gateway.tasks_in_flight = heartbeat.tasks_in_flight
            if heartbeat.audit_head is not None:
                self._anchors.record(session, name, heartbeat.audit_head)
            if heartbeat.ledger is not None and self.reconcile_budget is not None:
                self.reconcile_budget(session, name, heartbeat.ledger)
        self._anchors.anchor_own(session)

    def offline(self, session: Session, among: Collection[str] | None = None) -> dict[str, datetime]:
        """Each offline gateway (of those named `among`, when given), and since when."""
        now = self._clock()
        found = {}
        query = select(Gateway) if among is None else select(Gateway).where(Gateway.name.in_(list(among)))
        for gateway in session.execute(query).scalars():
            since = offline_since(gateway, now, self.offline_after_s)
            if since is not None:
                found[gateway.name] = since
        return found

    def with_health(self, session: Session, datasets: list[DatasetInfo]) -> list[DatasetInfo]:
        """The datasets, those of offline gateways marked with since when."""
        offline = self.offline(session)
        return [
            d.model_copy(update={"site_offline_since": offline[d.gateway]}) if d.gateway in offline else d
            for d in datasets
        ]

    def job_waiting(self, session: Session, job: JobPublic) -> JobPublic:
        """The job, saying which offline sites it waits for (those with an open task of it)."""
        if job.state not in (JobState.QUEUED, JobState.RUNNING):
            return job
        open_at = {t.gateway for t in job.tasks if t.state in OPEN_STATES}
        offline = self.offline(session, open_at) if open_at else {}
        waiting = sorted(g for g in open_at if g in offline)
        notes = [f"waiting for {offline_note(g, offline[g])}" for g in waiting]
        return job.model_copy(update={"waiting": notes}) if notes else job

    def list(self, session: Session) -> list[SitePublic]:
        """Every gateway, by org and name: who runs it, what it runs, whether it is online."""
        now = self._clock()
        rows = session.execute(select(Gateway).order_by(Gateway.org, Gateway.name)).scalars()
        return [
            SitePublic(
                name=g.name,
                org=g.org,
                version=g.version,
                last_seen=g.last_seen,
                online=offline_since(g, now, self.offline_after_s) is None,
                offline_after_s=self.offline_after_s,
                tasks_in_flight=g.tasks_in_flight,
            )
            for g in rows
        ]
