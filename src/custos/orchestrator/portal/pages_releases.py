"""Release review: the releases a custodian may review, and a release's page. Each held output is
shown, not described: a custom code table as a paged table with the gateway's disclosure-control
flags on the cells they concern, a JSON output as its text, a built-in model's result as its tables
and charts. A held file is shown too (`held_files`): a PNG inline from its same-origin URL, a CSV or
Parquet file as a paged table, a PDF as images of its pages, JSON as its text. Every org's part (how
many distinct approvals it needs, who gave them) is on the page,
with the forms to approve, request changes (return) or reject, each with a comment. Nothing of an
output is ever markup: every value goes through the templates' escaping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from custos.core.errors import InvalidInput
from custos.core.inert import inert
from custos.core.states import ReleaseState
from custos.core.wire import OutputFlag, ReleaseDecision, ReleaseDetail, ReleaseVoteCreate
from custos.orchestrator.api.context import PAGE_TAG, PageCallerDep, ServicesDep
from custos.orchestrator.portal.forms import SignedInForm
from custos.orchestrator.portal.held_files import FileView, file_view
from custos.orchestrator.portal.queries import list_releases
from custos.orchestrator.portal.render import page
from custos.orchestrator.portal.results import ResultView, result_view

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)
ROWS_PER_PAGE = 100
LIST_PAGE = 50
OPEN = (ReleaseState.HELD, ReleaseState.PARTIALLY_REVIEWED)


@dataclass
class HeldOutput:
    """One site's held output, as the reviewer sees it."""

    dataset: str
    kind: str
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    total_rows: int = 0
    flags: dict[tuple[int, str], str] = field(default_factory=dict)
    unplaced_flags: list[OutputFlag] = field(default_factory=list)
    text: str = ""
    file: FileView | None = None


def _flag_text(flag: OutputFlag) -> str:
    return f"{flag.rule}: {flag.action} ({flag.reason})"


def _held_outputs(detail: ReleaseDetail, offset: int) -> list[HeldOutput]:
    sites = detail.result.get("sites")
    if not isinstance(sites, dict):
        return []
    outputs = []
    for ref, encoded in sites.items():
        flags = [f for f in detail.flags if f.dataset in (None, ref)]
        if not isinstance(encoded, dict):
            outputs.append(HeldOutput(ref, "unknown", text=inert(json.dumps(encoded)[:20000])))
            continue
        kind = str(encoded.get("type"))
        if kind == "table":
            columns = [str(c) for c in encoded.get("columns", [])]
            all_rows = encoded.get("rows", [])
            shown = all_rows[offset : offset + ROWS_PER_PAGE]
            rows = [
                {c: inert(v) if isinstance(v, str) else v for c, v in zip(columns, r, strict=False)}
                for r in shown
            ]
            placed = {
                (f.row - offset, f.column): _flag_text(f)
                for f in flags
                if f.row is not None and f.column is not None and offset <= f.row < offset + ROWS_PER_PAGE
            }
            unplaced = [f for f in flags if f.row is None or f.column is None]
            outputs.append(HeldOutput(ref, kind, columns, rows, len(all_rows), placed, unplaced))
        elif kind == "file":
            outputs.append(HeldOutput(ref, kind, unplaced_flags=flags))
        elif kind == "json":
            text = json.dumps(encoded.get("value"), indent=2, ensure_ascii=False)
            outputs.append(HeldOutput(ref, kind, unplaced_flags=flags, text=inert(text)))
        else:
            described = {k: v for k, v in encoded.items() if k != "data"}
            outputs.append(
                HeldOutput(ref, kind, unplaced_flags=flags, text=inert(json.dumps(described, indent=2)))
            )
    return outputs


@router.get("/releases", response_class=HTMLResponse)
def releases(
    request: Request,
    caller: PageCallerDep,
    services: ServicesDep,
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """The releases waiting for your org (oldest first, paged), and the newest decided ones."""
    who = caller.identity
    offset = (page_no - 1) * LIST_PAGE

    def gather(s: Session) -> dict[str, Any]:
        waiting, total = list_releases(s, who, open_only=True, offset=offset, limit=LIST_PAGE)
        done, _ = list_releases(s, who, open_only=False, limit=20)
        return {"waiting": waiting, "total": total, "done": done}

    found = services.run(gather)
    pages = max(1, -(-found["total"] // LIST_PAGE))
    return page(request, "releases.html", caller, page_no=page_no, pages=pages, **found)


@router.get("/releases/{release_id}", response_class=HTMLResponse)
def release_page(
    release_id: str,
    request: Request,
    caller: PageCallerDep,
    services: ServicesDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HTMLResponse:
    who = caller.identity
    detail = services.run(lambda s: services.releases.get(s, who, release_id))
    outputs = _held_outputs(detail, offset)
    names = [o.dataset for o in outputs if o.kind == "file"]
    files = services.run(lambda s: {n: services.held_outputs.file(s, who, release_id, n) for n in names})
    for output in outputs:
        if output.dataset in files:
            file_type, data = files[output.dataset]
            output.file = file_view(file_type, data, offset=offset, limit=ROWS_PER_PAGE)
            output.total_rows = output.file.total_rows
    view: ResultView | None = None if "sites" in detail.result else result_view(detail.result)
    my_part = next((p for p in detail.parts if p.org.casefold() == who.org.casefold()), None)
    voted = any(v.reviewer == who.name for v in detail.votes)
    may_vote = detail.state in OPEN and my_part is not None and my_part.state == "pending" and not voted
    longest = max((o.total_rows for o in outputs), default=0)
    return page(
        request,
        "release.html",
        caller,
        detail=detail,
        outputs=outputs,
        view=view,
        my_part=my_part,
        voted=voted,
        may_vote=may_vote,
        offset=offset,
        per_page=ROWS_PER_PAGE,
        longest=longest,
        params=inert(json.dumps(detail.params, sort_keys=True)),
    )


DECISIONS = {
    "approve": ReleaseDecision.APPROVE,
    "return": ReleaseDecision.RETURN,
    "reject": ReleaseDecision.REJECT,
}


@router.post("/releases/{release_id}/vote")
def vote(release_id: str, caller: PageCallerDep, services: ServicesDep, form: SignedInForm) -> Response:
    decision = DECISIONS.get(form.get("decision", ""))
    if decision is None:
        raise InvalidInput(
            f"decision must be one of {', '.join(DECISIONS)}, not {form.get('decision', '')!r}"
        )
    body = ReleaseVoteCreate(reason=form.text("reason", max_length=4000))
    services.run(lambda s: services.releases.vote(s, caller.identity, release_id, decision, body))
    return RedirectResponse(f"/releases/{release_id}", status_code=303)
