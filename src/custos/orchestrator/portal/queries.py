"""Read-only lists the portal's pages need, one query each and paged: a caller's jobs, the releases a
reviewer may vote on. Visibility follows the permission
table, as the services apply it: `job.view` (project admins all jobs, everyone else their org's) and
`release.review` (an org admin, for the releases with a part of their org, never of their own job).
The services' own lists load each row's details; these are for pages that show thousands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from custos.core.identity import Identity, Role
from custos.core.states import JobState, ReleaseState
from custos.orchestrator.tables import Job, Release, ReleasePartRecord, ReleaseReview


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


OPEN_RELEASES = (ReleaseState.HELD, ReleaseState.PARTIALLY_REVIEWED)


@dataclass(frozen=True)
class ReleaseRow:
    id: str
    job_id: str
    model: str
    submitter: str
    submitter_org: str
    state: ReleaseState
    required: int
    approvals: int
    created_at: datetime


def list_releases(
    session: Session, caller: Identity, *, open_only: bool, offset: int = 0, limit: int = 50
) -> tuple[list[ReleaseRow], int]:
    """The releases `caller` reviews a part of (oldest first when `open_only`, else newest first),
    and how many there are in all."""
    if caller.role is not Role.ORG_ADMIN:
        return [], 0
    approvals = (
        select(ReleaseReview.release_id, func.count().label("n"))
        .where(ReleaseReview.decision == "approve")
        .group_by(ReleaseReview.release_id)
        .subquery()
    )
    query = (
        select(Release, Job.model, Job.submitter, Job.org, func.coalesce(approvals.c.n, 0))
        .join(Job, Job.id == Release.job_id)
        .join(
            ReleasePartRecord,
            and_(
                ReleasePartRecord.release_id == Release.id,
                func.lower(ReleasePartRecord.org) == caller.org.lower(),
            ),
        )
        .outerjoin(approvals, approvals.c.release_id == Release.id)
        .where(func.lower(Job.submitter) != caller.name.lower())
    )
    if open_only:
        query = query.where(Release.state.in_(OPEN_RELEASES)).order_by(Release.created_at, Release.id)
    else:
        query = query.where(Release.state.not_in(OPEN_RELEASES)).order_by(
            Release.updated_at.desc(), Release.id
        )
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = [
        ReleaseRow(
            r.id, r.job_id, model, submitter, org, r.state, r.required, min(int(n), r.required), r.created_at
        )
        for r, model, submitter, org, n in session.execute(query.offset(offset).limit(limit))
    ]
    return rows, total
