"""Jobs: the list with live states (htmx polls each running job's state), a job's page with its tasks
per round and site, its result as tables and charts, the cancel button, and the result's downloads
(JSON, and each table as CSV)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from custos.core.errors import Conflict, NotFound, PermissionDenied
from custos.core.states import JobState
from custos.core.wire import JobPublic
from custos.orchestrator.api.context import PAGE_TAG, PageCallerDep, ServicesDep
from custos.orchestrator.portal.forms import SignedInForm
from custos.orchestrator.portal.queries import list_jobs
from custos.orchestrator.portal.render import page
from custos.orchestrator.portal.results import result_tables, result_view, table_csv
from custos.policy.permissions import Resource, can_perform, permission_table

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)


def _filename(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(parts))[:120]


PAGE_SIZE = 50
LIVE = (JobState.QUEUED, JobState.RUNNING)


@router.get("/jobs", response_class=HTMLResponse)
def jobs(
    request: Request,
    caller: PageCallerDep,
    services: ServicesDep,
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    rows, total = services.run(
        lambda s: list_jobs(s, caller.identity, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    )
    pages = max(1, -(-total // PAGE_SIZE))
    return page(request, "jobs.html", caller, jobs=rows, total=total, page_no=page_no, pages=pages)


@router.get("/jobs/{job_id}/state", response_class=HTMLResponse)
def job_state(job_id: str, request: Request, caller: PageCallerDep, services: ServicesDep) -> HTMLResponse:
    """The state cell of a job in the list, polled while the job runs."""
    job = services.run(lambda s: services.jobs.get(s, caller.identity, job_id))
    return page(request, "job_state.html", caller, job=job, live=job.state in LIVE)


def _rounds(job: JobPublic) -> list[tuple[int, list[Any]]]:
    by_round: dict[int, list[Any]] = {}
    for task in job.tasks:
        by_round.setdefault(task.round, []).append(task)
    return sorted(by_round.items(), reverse=True)


@router.get("/jobs/{job_id}/progress", response_class=HTMLResponse)
def job_progress(job_id: str, request: Request, caller: PageCallerDep, services: ServicesDep) -> HTMLResponse:
    """The job's state and tasks, polled by its page while it runs; once it has ended, the page
    reloads (HX-Refresh) to show the result."""
    job = services.run(lambda s: services.sites.job_waiting(s, services.jobs.get(s, caller.identity, job_id)))
    response = page(
        request, "job_progress.html", caller, job=job, rounds=_rounds(job), live=job.state in LIVE
    )
    if job.state not in LIVE:
        response.headers["HX-Refresh"] = "true"
    return response


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(job_id: str, request: Request, caller: PageCallerDep, services: ServicesDep) -> HTMLResponse:
    who = caller.identity

    def gather(s: Session) -> dict[str, Any]:
        job = services.sites.job_waiting(s, services.jobs.get(s, who, job_id))
        table = permission_table()
        resource = Resource(job.submitter, job.org)
        context: dict[str, Any] = {
            "job": job,
            "rounds": _rounds(job),
            "live": job.state in LIVE,
            "may_cancel": job.state in LIVE and can_perform(table, "job.cancel", who, resource),
            "result": None,
            "result_note": "",
        }
        if job.state is JobState.SUCCEEDED:
            try:
                context["result"] = result_view(services.jobs.result(s, who, job_id).result)
            except PermissionDenied as exc:
                context["result_note"] = exc.message
        elif job.state is JobState.AWAITING_RELEASE:
            try:
                services.jobs.result(s, who, job_id)
            except (Conflict, PermissionDenied) as exc:
                context["result_note"] = exc.message
        return context

    return page(request, "job.html", caller, **services.run(gather))


@router.post("/jobs/{job_id}/cancel")
def cancel(job_id: str, caller: PageCallerDep, services: ServicesDep, _: SignedInForm) -> Response:
    services.run(lambda s: services.jobs.cancel(s, caller.identity, job_id))
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/jobs/{job_id}/result.json")
def result_json(job_id: str, caller: PageCallerDep, services: ServicesDep) -> Response:
    result = services.run(lambda s: services.jobs.result(s, caller.identity, job_id))
    return Response(
        json.dumps(result.model_dump(mode="json"), indent=2),
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="{_filename(job_id)}.json"'},
    )


@router.get("/jobs/{job_id}/result.csv")
def result_csv(
    job_id: str,
    caller: PageCallerDep,
    services: ServicesDep,
    table: Annotated[str, Query(max_length=200)],
) -> Response:
    result = services.run(lambda s: services.jobs.result(s, caller.identity, job_id))
    tables = {t.name: t for t in result_tables(result.result)}
    if table not in tables:
        raise NotFound(
            f"the result of job {job_id} has no table {table}; it has: {', '.join(tables) or 'none'}"
        )
    return Response(
        table_csv(tables[table]),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{_filename(job_id, table)}.csv"'},
    )
