"""The audit trail in the portal: a search of the orchestrator's trail by user, action, job and dates
(the events the caller may see: an org admin its org's users' and gateways', a project admin all),
and, for those who may read the orchestrator's anchors (project admins), whether the trail verifies
line by line and against every head anchored in the database — `custos audit verify --anchored
orchestrator`, without the file. Every message and name is inert text."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from custos.audit import VerifyReport
from custos.core.errors import InvalidInput, NotFound
from custos.core.inert import inert
from custos.orchestrator.api.context import PAGE_TAG, PageCallerDep, ServicesDep
from custos.orchestrator.portal.render import page

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)
SHOWN = 500  # the newest matching events a page shows
Filter = Annotated[str, Query(max_length=128)]


def _day(name: str, value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"{name} must be a date such as 2026-12-01, not {inert(value[:40])!r}") from None


@router.get("/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    caller: PageCallerDep,
    services: ServicesDep,
    user: Filter = "",
    action: Filter = "",
    job: Filter = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
) -> HTMLResponse:
    """The newest SHOWN events matching every filter given; `until` is a day included whole."""
    who = caller.identity
    start, end = _day("since", since), _day("until", until)
    if start is not None and end is not None and end < start:
        raise InvalidInput(f"until {until} is before since {since}")

    def gather(s: Session) -> dict[str, Any]:
        events = services.people.audit(
            s, who, job=job.strip() or None, user=user.strip() or None, action=action.strip() or None,
            since=start, until=None if end is None else end + timedelta(days=1), limit=SHOWN,
        )  # fmt: skip
        report: VerifyReport | None
        try:
            report = services.anchors.verify_own(s, who)
        except NotFound:
            report = None  # only those who may read the orchestrator's anchors see its verdict
        return {"events": events[::-1], "report": report}

    found = services.run(gather)
    events = [
        {
            "line": e.line,
            "time": e.time,
            "user": inert(e.user),
            "action": inert(e.action),
            "job": inert(e.job or "—"),
            "message": inert(e.message),
        }
        for e in found["events"]
    ]
    filters = {"user": user, "action": action, "job": job, "since": since, "until": until}
    return page(
        request, "audit.html", caller, events=events, report=found["report"], filters=filters, shown=SHOWN
    )
