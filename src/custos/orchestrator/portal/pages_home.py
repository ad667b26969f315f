"""Signing in and out of the portal, and each role's home page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from custos.core.errors import AuthenticationFailed, PermissionDenied
from custos.core.identity import Role
from custos.core.states import CodeRequestState
from custos.orchestrator.api.context import PAGE_TAG, PageCallerDep, ServicesDep
from custos.orchestrator.api.routes_auth import (
    client_address_of,
    end_browser_session,
    password_sign_in,
    set_session_cookie,
)
from custos.orchestrator.portal.forms import SignedInForm, read_form
from custos.orchestrator.portal.queries import list_jobs, list_releases
from custos.orchestrator.portal.render import page
from custos.orchestrator.portal.security import (
    CSRF_FIELD,
    SIGN_IN_COOKIE,
    csrf_matches,
    csrf_token,
    new_sign_in_cookie,
)
from custos.orchestrator.services.rate_limit import SignInRateLimited
from custos.orchestrator.services.sessions import SESSION_COOKIE

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)

RESEARCHER_ROLES = (Role.LEAD_RESEARCHER, Role.MEMBER_RESEARCHER)


def _sign_in_page(request: Request, *, error: str = "", name: str = "", status: int = 200) -> HTMLResponse:
    cookie = new_sign_in_cookie()
    response = page(
        request, "signin.html", None, status=status, error=error, name=name, signin_csrf=csrf_token(cookie)
    )
    response.set_cookie(SIGN_IN_COOKIE, cookie, path="/signin", secure=True, httponly=True, samesite="strict")
    return response


@router.get("/signin", response_class=HTMLResponse)
def sign_in_form(request: Request) -> HTMLResponse:
    return _sign_in_page(request)


@router.post("/signin", response_class=HTMLResponse)
async def sign_in(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    if not csrf_matches(request.cookies.get(SIGN_IN_COOKIE), form.get(CSRF_FIELD)):
        return _sign_in_page(request, error="the sign-in form expired; please try again", status=403)
    name, password = form.text("name", max_length=128), form.text("password", max_length=1024)
    try:
        _, opened = password_sign_in(services, name, password, client_address_of(request))
    except SignInRateLimited as exc:
        response = _sign_in_page(request, error=exc.message, name=name, status=429)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except AuthenticationFailed as exc:
        return _sign_in_page(request, error=exc.message, name=name, status=401)
    home = RedirectResponse("/", status_code=303)
    set_session_cookie(home, services, opened)
    home.delete_cookie(SIGN_IN_COOKIE, path="/signin", secure=True, httponly=True, samesite="strict")
    return home


@router.post("/signout")
def sign_out(request: Request, caller: PageCallerDep, services: ServicesDep, _: SignedInForm) -> Response:
    response = RedirectResponse("/signin", status_code=303)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise PermissionDenied("sign out ends a browser session, and this request carried none")
    end_browser_session(services, caller, cookie, response)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, caller: PageCallerDep, services: ServicesDep) -> HTMLResponse:
    """A researcher's jobs and code requests; a custodian's queue; an admin's users, tokens and sites."""
    who = caller.identity

    def gather(s: Session) -> dict[str, Any]:
        context: dict[str, Any] = {}
        if who.role in RESEARCHER_ROLES:
            context["jobs"], context["jobs_total"] = list_jobs(s, who, mine=True, limit=20)
            context["code_requests"] = [r for r in services.code.list_visible(s, who) if r.author == who.name]
        if who.role is Role.ORG_ADMIN:
            context["code_queue"] = [
                r
                for r in services.code.list_visible(s, who)
                if r.state is CodeRequestState.PENDING
                and who.org in r.orgs
                and r.author != who.name
                and not any(v.org == who.org for v in r.reviews)
            ]
            context["release_queue"], context["release_total"] = list_releases(
                s, who, open_only=True, limit=20
            )
        if who.role in (Role.ORG_ADMIN, Role.PROJECT_ADMIN):
            context["sites"] = [
                site
                for site in services.sites.list(s)
                if who.role is Role.PROJECT_ADMIN or site.org == who.org
            ]
            context["users"] = services.people.users(s, who)
        if who.role is Role.PROJECT_ADMIN:
            context["jobs"], context["jobs_total"] = list_jobs(s, who, limit=20)
        context["tokens"] = services.auth.api_tokens.list_tokens(s, who.name)
        return context

    context = services.run(gather)
    return page(request, "home.html", caller, **context)
