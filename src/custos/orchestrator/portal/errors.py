"""How a page answers an error: the sign-in page for a missing or ended session, else an HTML page
with the error's message (the API's routes keep answering JSON)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from custos.core.errors import CustosError
from custos.orchestrator.api.context import SignInRequired
from custos.orchestrator.portal.render import page

HEADINGS = {400: "That did not work", 403: "Not allowed", 404: "Not found", 409: "Not now", 413: "Too large"}


def page_error(request: Request, exc: CustosError) -> Response:
    if isinstance(exc, SignInRequired):
        return RedirectResponse("/signin", status_code=303)
    caller = getattr(request.state, "caller", None)
    return page(
        request,
        "error.html",
        caller,
        status=exc.status,
        heading=HEADINGS.get(exc.status, "Something went wrong"),
        message=exc.message,
    )
