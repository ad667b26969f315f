"""What every route needs: the database, the services, and the verified caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.core.errors import AuthenticationFailed, PermissionDenied
from custos.core.identity import ParticipantKind
from custos.core.refs import NAME_PATTERN, VERSION_PATTERN
from custos.orchestrator.db import Database
from custos.orchestrator.metrics import OrchestratorMetrics
from custos.orchestrator.notifier import TaskNotifier, pending_notifications
from custos.orchestrator.services.anchors import AnchorService
from custos.orchestrator.services.auth import AuthService, Caller, Credential
from custos.orchestrator.services.budget import BudgetService
from custos.orchestrator.services.budget_reconciliation import BudgetReconciler
from custos.orchestrator.services.code_requests import CodeRequestService
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.services.held_outputs import HeldOutputService
from custos.orchestrator.services.jobs import JobService
from custos.orchestrator.services.models import ModelService
from custos.orchestrator.services.people import PeopleService
from custos.orchestrator.services.polls import PollService
from custos.orchestrator.services.released_logs import ReleasedLogService
from custos.orchestrator.services.releases import ReleaseService
from custos.orchestrator.services.sessions import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from custos.orchestrator.services.sites import SiteService
from custos.orchestrator.services.specs import SpecService
from custos.orchestrator.services.tasks import TaskService
from custos.orchestrator.services.trust import Trust
from custos.orchestrator.settings import OrchestratorSettings
from custos.orchestrator.wakeups import PostgresWakeups, announce

T = TypeVar("T")


@dataclass
class Services:
    settings: OrchestratorSettings
    db: Database
    notifier: TaskNotifier
    audit: AuditTrail
    auth: AuthService
    datasets: DatasetService
    specs: SpecService
    jobs: JobService
    tasks: TaskService
    people: PeopleService
    trust: Trust
    releases: ReleaseService
    held_outputs: HeldOutputService
    logs: ReleasedLogService
    code: CodeRequestService
    budget: BudgetService
    models: ModelService
    metrics: OrchestratorMetrics
    sites: SiteService
    anchors: AnchorService
    reconciler: BudgetReconciler
    polls: PollService
    # Wake-ups across processes on PostgreSQL (none on SQLite: one process serves it).
    wakeups: PostgresWakeups | None

    def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in one transaction; after it commits, wake the gateways it queued work for."""
        with self.db.session() as session:
            value = fn(session)
            notify = pending_notifications(session)
            if notify and self.wakeups is not None:
                announce(session, notify)  # to the other orchestrator processes, at commit
        self.notifier.notify(notify)
        return value


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_caller(request: Request, services: ServicesDep) -> Caller:
    """The caller of a bearer token (a kit token or an API token), else of the session cookie.

    A request authenticated by the cookie that changes state must also carry `X-Custos-Request: 1`:
    a browser attaches the cookie to a request another site makes it send, but it lets no other
    site set that header.

    The permission gate (`authorize`) runs this first; the route's own dependency then gets the same
    caller back from the request's state instead of looking it up again.
    """
    known = getattr(request.state, "caller", None)
    if isinstance(known, Caller):
        return known
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    cookie = request.cookies.get(SESSION_COOKIE)
    if scheme.lower() == "bearer" and token.strip():
        caller = services.run(lambda s: services.auth.caller(s, token.strip()))
    elif cookie:
        caller = services.run(lambda s: services.auth.session_caller(s, cookie))
    else:
        raise AuthenticationFailed(
            "sign in first: send Authorization: Bearer <token> from /api/v1/auth/token "
            "(or an API token), or sign in with a password at /api/v1/auth/login"
        )
    request.state.caller = caller  # for the audit line of a refusal
    if (
        caller.credential is Credential.SESSION
        and request.method not in SAFE_METHODS
        and request.headers.get(CSRF_HEADER) != "1"
    ):
        raise PermissionDenied(
            f"a {request.method} signed in by the session cookie must carry the header "
            f"{CSRF_HEADER}: 1 (a defence against cross-site requests)"
        )
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]

# The tag of the portal's pages: routes a browser navigates to, signed in by the session cookie only.
PAGE_TAG = "portal"


class SignInRequired(AuthenticationFailed):
    """A page was asked for without a live session: the portal answers with its sign-in page."""


def is_page(request: Request) -> bool:
    route = request.scope.get("route")
    return PAGE_TAG in (getattr(route, "tags", None) or ())


def get_page_caller(request: Request, services: ServicesDep) -> Caller:
    """The caller of a page: the user of the session cookie, never a bearer token (pages are for
    browsers). A page's forms carry a CSRF token instead of the API's header; the form's route
    checks it (`custos.orchestrator.portal.forms`)."""
    known = getattr(request.state, "caller", None)
    if isinstance(known, Caller):
        return known
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise SignInRequired("sign in to see this page")
    try:
        caller = services.run(lambda s: services.auth.session_caller(s, cookie))
    except AuthenticationFailed as exc:
        raise SignInRequired(exc.message) from exc
    request.state.caller = caller
    return caller


PageCallerDep = Annotated[Caller, Depends(get_page_caller)]


def get_gateway(caller: CallerDep) -> Caller:
    if caller.identity.kind is not ParticipantKind.GATEWAY:
        raise PermissionDenied("this route is for gateways only")
    return caller


def get_user(caller: CallerDep) -> Caller:
    if caller.identity.kind is not ParticipantKind.USER:
        raise PermissionDenied("this route is for users only")
    return caller


GatewayDep = Annotated[Caller, Depends(get_gateway)]
UserDep = Annotated[Caller, Depends(get_user)]


# Names in a path, with the patterns the services check them against (custos.core.refs), so the
# API's description states what is accepted; the service's refusal says it in words.
NamePath = Annotated[
    str, Path(json_schema_extra={"pattern": NAME_PATTERN}, description="lower-case letters, digits, . _ -")
]
VersionPath = Annotated[str, Path(json_schema_extra={"pattern": VERSION_PATTERN}, description="e.g. 1.0.0")]
# A blob's name in a path: its SHA-256, in lower-case hex.
BlobDigest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="the blob's SHA-256 (hex)")]
OCTET_STREAM = "application/octet-stream"
_BYTES = {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}}
# The OpenAPI request body of a route that reads raw bytes itself (a blob upload).
RAW_BODY = {"required": True, "content": _BYTES}
# The OpenAPI answer of a route that sends a blob's raw bytes.
BLOB_ANSWER: dict[int | str, dict[str, Any]] = {200: {"description": "the blob's bytes", "content": _BYTES}}
