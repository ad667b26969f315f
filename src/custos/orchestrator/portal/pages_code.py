"""Code review: the list of code requests, and a request's page with its exact code (made inert, then
highlighted by Pygments) beside the author's mock run (what the author's machine printed running it
on the mock tables, labelled as unverified: the orchestrator never runs code), the diff against the
author's previous request for the same datasets, the decisions so far, a deny form, and the
`custos code approve` command (an approval is signed with the reviewer's kit, and keys never enter the
browser)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from custos.computations.custom.mock_run import summary
from custos.core.identity import Role
from custos.core.inert import hidden_characters, inert
from custos.core.states import CodeRequestState
from custos.core.wire import CodeRequestDetail, CodeReviewCreate, MockOutput, MockRun
from custos.orchestrator.api.context import PAGE_TAG, PageCallerDep, ServicesDep
from custos.orchestrator.portal.forms import SignedInForm
from custos.orchestrator.portal.render import highlight, page

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)


@dataclass(frozen=True)
class DiffLine:
    kind: str  # add | del | same | hunk
    text: str


@dataclass(frozen=True)
class MockPart:
    """One dataset's mock run as the page shows it, every string inert: a table's columns and rows
    (keyed by column, a repeated name made unique), or a text (a JSON value, or the error)."""

    dataset: str
    ok: bool
    kind: str | None
    summary: str
    columns: list[str]
    rows: list[dict[str, Any]]
    text: str


def _unique(names: list[str]) -> list[str]:
    unique: list[str] = []
    taken: set[str] = set()
    for name in names:
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name} ({n})"
        taken.add(candidate)
        unique.append(candidate)
    return unique


def _mock_part(output: MockOutput) -> MockPart:
    columns = _unique([inert(c, multiline=False) for c in output.columns])
    rows = [
        {c: inert(v, multiline=False) if isinstance(v, str) else v for c, v in zip(columns, r, strict=False)}
        for r in output.rows
    ]
    text = output.error if not output.ok else output.text
    return MockPart(
        dataset=inert(output.dataset, multiline=False),
        ok=output.ok,
        kind=output.kind,
        summary=inert(summary(output), multiline=False),
        columns=columns,
        rows=rows,
        text=inert(text),
    )


def _mock_hidden(run: MockRun) -> int:
    texts = [o.error + o.text + "".join(o.columns) for o in run.outputs]
    texts += [v for o in run.outputs for row in o.rows for v in row if isinstance(v, str)]
    return sum(hidden_characters(t) for t in texts)


@router.get("/code", response_class=HTMLResponse)
def code_requests(request: Request, caller: PageCallerDep, services: ServicesDep) -> HTMLResponse:
    rows = services.run(lambda s: services.code.list_visible(s, caller.identity))
    return page(request, "code_list.html", caller, requests=list(reversed(rows)))


def _diff(previous: str, current: str) -> list[DiffLine]:
    lines = []
    for line in difflib.unified_diff(
        inert(previous).splitlines(),
        inert(current).splitlines(),
        "previous",
        "this request",
        lineterm="",
        n=3,
    ):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        lines.append(DiffLine(kind, line))
    return lines


@router.get("/code/{request_id}", response_class=HTMLResponse)
def code_request(
    request_id: str, request: Request, caller: PageCallerDep, services: ServicesDep
) -> HTMLResponse:
    who = caller.identity

    def gather(s: Session) -> dict[str, Any]:
        detail = services.code.get(s, who, request_id)
        previous: CodeRequestDetail | None = None
        earlier = [
            r
            for r in services.code.list_visible(s, who)
            if r.author == detail.author
            and sorted(r.datasets) == sorted(detail.datasets)
            and r.created_at < detail.created_at
            and r.id != detail.id
        ]
        if earlier:
            previous = services.code.get(s, who, earlier[-1].id)
        return {"detail": detail, "previous": previous}

    found = services.run(gather)
    detail: CodeRequestDetail = found["detail"]
    previous: CodeRequestDetail | None = found["previous"]
    may_review = (
        who.role is Role.ORG_ADMIN
        and detail.state is CodeRequestState.PENDING
        and detail.author != who.name
        and any(o.casefold() == who.org.casefold() for o in detail.orgs)
        and not any(r.org.casefold() == who.org.casefold() for r in detail.reviews)
    )
    return page(
        request,
        "code.html",
        caller,
        detail=detail,
        code=highlight(inert(detail.source)) if detail.source else None,
        hidden=hidden_characters(detail.source),
        previous=previous,
        diff=_diff(previous.source, detail.source) if previous is not None else [],
        may_review=may_review,
        mock_parts=[_mock_part(o) for o in detail.mock_run.outputs] if detail.mock_run else None,
        mock_hidden=_mock_hidden(detail.mock_run) if detail.mock_run else 0,
        approve_command=f'custos code approve {detail.id} --reason "..." --kit KIT',
    )


@router.post("/code/{request_id}/deny")
def deny(request_id: str, caller: PageCallerDep, services: ServicesDep, form: SignedInForm) -> Response:
    body = CodeReviewCreate(reason=form.text("reason", max_length=2000))
    services.run(lambda s: services.code.review(s, caller.identity, request_id, "deny", body))
    return RedirectResponse(f"/code/{request_id}", status_code=303)
