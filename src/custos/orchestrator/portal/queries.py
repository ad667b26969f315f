"""Read-only lists the portal's pages need and no API route serves yet: a caller's jobs, newest
first, and the sites (gateways) a caller may see. Visibility follows the permission table
(`job.view`: project admins all, everyone else their org's), the same rule the job routes apply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custos.core.identity import Identity, Role
from custos.core.states import JobState
from custos.orchestrator.tables import Gateway, Job


@dataclass(frozen=True)
class JobRow:
    id: str
    model: str
    state: JobState
    round: int
    submitter: str
    org: str
    created_at: datetime
    finished_at: datetime | None
    reason: str | None

    @property
    def live(self) -> bool:
        return self.state in (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True)
class SiteRow:
    name: str
    org: str
    last_seen: datetime


def list_jobs(
    session: Session, caller: Identity, *, mine: bool = False, offset: int = 0, limit: int = 50
) -> tuple[list[JobRow], int]:
    """The jobs `caller` may view (with `mine`, only those it submitted), newest first, and how many
    there are in all."""
    query = select(Job)
    if caller.role is not Role.PROJECT_ADMIN:
        query = query.where(Job.org == caller.org)
    if mine:
        query = query.where(Job.submitter == caller.name)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(Job.created_at.desc(), Job.id).offset(offset).limit(limit)
    ).scalars()
    return [
        JobRow(j.id, j.model, j.state, j.round, j.submitter, j.org, j.created_at, j.finished_at, j.reason)
        for j in rows
    ], total


def list_sites(session: Session, caller: Identity) -> list[SiteRow]:
    """Every site for a project admin; the sites of the caller's org for anyone else."""
    query = select(Gateway).order_by(Gateway.name)
    if caller.role is not Role.PROJECT_ADMIN:
        query = query.where(Gateway.org == caller.org)
    return [SiteRow(g.name, g.org, g.last_seen) for g in session.execute(query).scalars()]
