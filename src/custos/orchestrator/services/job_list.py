"""The job list: whose jobs a caller sees (the permission table's `job.list`: researchers their own, an
org admin the org's, a project admin all), filtered by state, spec and time, newest first, in pages
that a cursor continues.

The order is (created_at, id) descending, a total order, so a page never repeats or skips a job
however many are submitted meanwhile: the cursor names the last job of the page, and the next page
starts strictly after it. A cursor is that position written out, `MICROSECONDS.ID` (the job's
creation in microseconds since 1970, UTC, and its id), so `CURSOR_PATTERN` states in the API's
description every cursor there is: any value it matches is a position to continue from.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, false, func, literal, or_, select, true, tuple_
from sqlalchemy.orm import Session

from custos.core.errors import InvalidInput
from custos.core.identity import Identity
from custos.core.states import JobState
from custos.core.wire import JobPage, JobSummary
from custos.orchestrator.tables import Job, UtcDateTime
from custos.policy.permissions import can_perform, permission_table

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# At most 17 digits: every such instant is a date the databases and Python hold (before the year 5000).
CURSOR_PATTERN = r"^[0-9]{1,17}\.[a-z0-9_]{1,40}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class JobFilter:
    """What `GET /api/v1/jobs` narrows by: any of `states`, one spec, created at or after `since`."""

    states: Collection[JobState] = ()
    spec_id: str | None = None
    since: datetime | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def _visible(caller: Identity) -> ColumnElement[bool]:
    """The jobs `job.list` lets the caller see, as a WHERE clause built from the table's conditions."""
    table = permission_table()
    if can_perform(table, "job.list", caller):  # `any`, `o:ORG`, `n:NAME`: every job
        return true()
    conditions = table.conditions("job.list", caller.role)
    clauses: list[ColumnElement[bool]] = []
    if "self" in conditions:
        clauses.append(func.lower(Job.submitter) == caller.name.casefold())
    if "org" in conditions:
        clauses.append(func.lower(Job.org) == caller.org.casefold())
    return or_(*clauses) if clauses else false()


def encode_cursor(job: Job) -> str:
    return f"{(job.created_at - _EPOCH) // _MICROSECOND}.{job.id}"


def _after(cursor: str) -> ColumnElement[bool]:
    if not _CURSOR.fullmatch(cursor):
        raise InvalidInput(
            f"cursor {cursor[:60]!r} is not one a job list returned; continue from a page's next_cursor"
        )
    micros, _, job_id = cursor.partition(".")
    at = _EPOCH + int(micros) * _MICROSECOND
    # A row-value comparison: SQLite and PostgreSQL both walk the (created_at, id) index from it.
    return tuple_(Job.created_at, Job.id) < tuple_(literal(at, UtcDateTime()), literal(job_id))


def summary(job: Job) -> JobSummary:
    return JobSummary(
        id=job.id,
        spec_id=job.spec_id,
        model=job.model,
        state=job.state,
        round=job.round,
        reason=job.reason,
        submitter=job.submitter,
        org=job.org,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


def list_jobs(session: Session, caller: Identity, where: JobFilter) -> JobPage:
    if not 1 <= where.limit <= MAX_LIMIT:
        raise InvalidInput(f"limit {where.limit} is outside 1..{MAX_LIMIT}")
    if where.since is not None and where.since.tzinfo is None:
        raise InvalidInput(f"since {where.since.isoformat()} has no time zone; add one, e.g. Z")
    query = select(Job).where(_visible(caller))
    if where.states:
        query = query.where(Job.state.in_(list(where.states)))
    if where.spec_id is not None:
        query = query.where(Job.spec_id == where.spec_id)
    if where.since is not None:
        query = query.where(Job.created_at >= where.since)
    if where.cursor:
        query = query.where(_after(where.cursor))
    rows = (
        session.execute(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(where.limit + 1))
        .scalars()
        .all()
    )
    page = rows[: where.limit]
    more = len(rows) > where.limit
    return JobPage(jobs=[summary(j) for j in page], next_cursor=encode_cursor(page[-1]) if more else None)
