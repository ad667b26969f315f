"""Sign-in routes: kit challenge and token, password login and logout, setting a password, who am I."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from custos.core.errors import AuthenticationFailed, PermissionDenied, RateLimited
from custos.core.wire import (
    Challenge,
    ChallengeRequest,
    Me,
    PasswordLogin,
    PasswordSet,
    TokenGrant,
    TokenRequest,
)
from custos.orchestrator.api.context import CallerDep, Services, ServicesDep, UserDep
from custos.orchestrator.api.responses import refusals
from custos.orchestrator.services.auth import BadSignature, Caller, Credential, account_name
from custos.orchestrator.services.rate_limit import SignInRateLimited, client_address
from custos.orchestrator.services.sessions import SESSION_COOKIE, OpenedSession

router = APIRouter(prefix="/api/v1", tags=["auth"])


def _me(caller: Caller) -> Me:
    i = caller.identity
    return Me(name=i.name, org=i.org, role=i.role.value, fingerprint=caller.fingerprint)


def _who(name: str) -> str:
    """A typed name as the audit line's user field, or '-' if it could break the line's format."""
    return name if name and name != "-" and name.isprintable() and "]" not in name else "-"


def client_address_of(request: Request) -> str:
    """The client address sign-in failures are counted against: the TCP peer, as uvicorn saw it."""
    return client_address(request.client.host if request.client else None)


def _too_many(exc: SignInRateLimited) -> HTTPException:
    return HTTPException(
        status_code=exc.status, detail=exc.message, headers={"Retry-After": str(exc.retry_after_s)}
    )


@router.post("/auth/challenge", responses=refusals(AuthenticationFailed))
def challenge(body: ChallengeRequest, services: ServicesDep) -> Challenge:
    return services.run(lambda s: services.auth.challenge(s, body))


@router.post("/auth/token", responses=refusals(AuthenticationFailed, RateLimited))
def token(body: TokenRequest, request: Request, services: ServicesDep) -> TokenGrant:
    address = client_address_of(request)
    try:
        grant = services.auth.sign_in_with_kit(services, body, address)
    except SignInRateLimited as exc:
        services.audit.append(
            user=_who(exc.who),
            action="sign_in_rate_limited",
            message=f"method=token from {address}: limit of the {exc.scope}",
        )
        raise _too_many(exc) from exc
    except AuthenticationFailed as exc:
        who = _who(exc.account) if isinstance(exc, BadSignature) else "-"
        services.audit.append(
            user=who, action="sign_in_refused", message=f"method=token from {address}: {exc}"
        )
        raise
    services.audit.append(
        user=grant.name, action="sign_in", message=f"method=token: {grant.role} of {grant.org}"
    )
    return grant


def password_sign_in(
    services: Services, name: str, password: str, address: str
) -> tuple[Caller, OpenedSession]:
    """Sign in with a password from `address` and audit the outcome; the API's login and the
    portal's sign-in form both come here. Raises SignInRateLimited or AuthenticationFailed."""
    who = _who(account_name(name))
    try:
        caller, opened = services.auth.login(services, name, password, address)
    except SignInRateLimited as exc:
        services.audit.append(
            user=who,
            action="sign_in_rate_limited",
            message=f"method=password from {address}: limit of the {exc.scope}",
        )
        raise
    except AuthenticationFailed:
        services.audit.append(
            user=who,
            action="sign_in_refused",
            message=f"method=password from {address}: wrong name or password",
        )
        raise
    i = caller.identity
    services.audit.append(user=i.name, action="sign_in", message=f"method=password: {i.role} of {i.org}")
    return caller, opened


def set_session_cookie(response: Response, services: Services, opened: OpenedSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        max_age=services.settings.session_ttl_s,
        expires=opened.expires_at,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def end_browser_session(services: Services, caller: Caller, cookie: str, response: Response) -> None:
    """End the session of `cookie` in the database, audit it, and clear the cookie on `response`."""
    services.run(lambda s: services.auth.end_session(s, cookie))
    services.audit.append(user=caller.identity.name, action="session_ended", message="logout")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


@router.post("/auth/login", responses=refusals(AuthenticationFailed, PermissionDenied, RateLimited))
def login(body: PasswordLogin, request: Request, response: Response, services: ServicesDep) -> Me:
    """Sign in with a password; the answer sets the session cookie."""
    try:
        caller, opened = password_sign_in(services, body.name, body.password, client_address_of(request))
    except SignInRateLimited as exc:
        raise _too_many(exc) from exc
    set_session_cookie(response, services, opened)
    return _me(caller)


@router.post("/auth/logout", status_code=204)
def logout(request: Request, caller: CallerDep, services: ServicesDep) -> Response:
    """End the browser session of the cookie and clear the cookie."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if caller.credential is not Credential.SESSION or cookie is None:
        raise PermissionDenied(
            "logout ends a browser session, and this request was not signed in by the session cookie; "
            "a kit token expires on its own, and an API token ends with `custos token revoke`"
        )
    response = Response(status_code=204)
    end_browser_session(services, caller, cookie, response)
    return response


@router.post("/auth/password", status_code=204)
def set_password(body: PasswordSet, caller: UserDep, services: ServicesDep) -> Response:
    """Set or change the caller's web password; only a caller signed in with the kit may."""
    services.auth.set_password(services, caller, body.password)
    services.audit.append(
        user=caller.identity.name, action="password_set", message="browser sessions of the user ended"
    )
    return Response(status_code=204)


@router.get("/me")
def me(caller: CallerDep) -> Me:
    return _me(caller)
