"""The orchestrator's ASGI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cryptography import x509
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError

from custos.audit import AuditTrail
from custos.core.clock import Clock, utcnow
from custos.core.errors import CustosError, PermissionDenied, Unavailable
from custos.orchestrator.api import (
    routes_admin,
    routes_auth,
    routes_budget,
    routes_code,
    routes_gateway,
    routes_models,
    routes_releases,
    routes_research,
    routes_tokens,
)
from custos.orchestrator.api.authorize import authorize
from custos.orchestrator.api.context import Services, is_page
from custos.orchestrator.api.limits import BodyLimit, first_error
from custos.orchestrator.api.responses import document_refusals
from custos.orchestrator.api.wire_version import WireVersionCheck
from custos.orchestrator.db import Database, migrate
from custos.orchestrator.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from custos.orchestrator.metrics import OrchestratorMetrics, RequestMetrics
from custos.orchestrator.notifier import TaskNotifier
from custos.orchestrator.outage import is_unavailable
from custos.orchestrator.portal import ROUTERS, SecurityHeaders, page_error
from custos.orchestrator.services.anchors import AnchorService
from custos.orchestrator.services.auth import AuthService
from custos.orchestrator.services.blob_stores import BlobStore, DatabaseBlobStore, FolderBlobStore
from custos.orchestrator.services.blobs import JobBlobs
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
from custos.orchestrator.services.sites import SiteService
from custos.orchestrator.services.specs import SpecService
from custos.orchestrator.services.tasks import TaskService
from custos.orchestrator.services.trust import Trust
from custos.orchestrator.settings import OrchestratorSettings
from custos.orchestrator.wakeups import PostgresWakeups, is_postgres
from custos.privacy.filters import SitePrivacy, check_orchestrator_config, load_site_privacy

log = logging.getLogger("custos.orchestrator")


def build_services(settings: OrchestratorSettings, root: x509.Certificate, clock: Clock) -> Services:
    db = Database(settings.database_url)
    migrate(db.engine)
    notifier = TaskNotifier()
    metrics = OrchestratorMetrics(db, notifier, settings.metrics_dir)
    audit = AuditTrail(settings.audit_path, clock=clock)
    trust = Trust(root, clock)
    datasets = DatasetService(clock, trust, audit)
    store: BlobStore = (
        DatabaseBlobStore() if settings.blob_store_kind == "database" else FolderBlobStore(settings.blob_root)
    )
    blobs = JobBlobs(store)
    tasks = TaskService(clock, settings.lease_margin_s, audit, datasets, blobs, metrics)
    privacy = load_site_privacy(settings.privacy_path) if settings.privacy_path else SitePrivacy()
    check_orchestrator_config(privacy)
    jobs = JobService(datasets, clock, audit, blobs, privacy, metrics)
    tasks.advance_job = jobs.advance
    budget = BudgetService(datasets, clock)
    anchors = AnchorService(clock, audit)
    sites = SiteService(clock, settings.offline_after_s, anchors)
    reconciler = BudgetReconciler(budget, datasets, clock, settings.offline_after_s)
    sites.reconcile_budget = reconciler.reconcile
    tasks.mirror_budget = budget.mirror
    releases = ReleaseService(clock, audit)
    services = Services(
        settings=settings,
        db=db,
        notifier=notifier,
        audit=audit,
        auth=AuthService(root, settings, clock, trust),
        datasets=datasets,
        specs=SpecService(datasets, clock, audit),
        jobs=jobs,
        tasks=tasks,
        people=PeopleService(settings.audit_path),
        trust=trust,
        releases=releases,
        held_outputs=HeldOutputService(releases, blobs, audit),
        logs=ReleasedLogService(clock, audit),
        code=CodeRequestService(datasets, jobs, trust, clock, audit),
        budget=budget,
        models=ModelService(clock, trust, audit),
        metrics=metrics,
        sites=sites,
        anchors=anchors,
        reconciler=reconciler,
        polls=PollService(clock),
        wakeups=PostgresWakeups(settings.database_url, notifier)
        if is_postgres(settings.database_url)
        else None,
    )
    services.run(services.models.register_builtins)
    return services


def create_app(settings: OrchestratorSettings, root: x509.Certificate, clock: Clock = utcnow) -> FastAPI:
    services = build_services(settings, root, clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.notifier.bind(asyncio.get_running_loop())
        if services.wakeups is not None:
            services.wakeups.start()
        yield
        if services.wakeups is not None:
            services.wakeups.stop()
        services.db.dispose()

    # Every route passes the permission table first (default deny; see custos/policy/permissions.yaml).
    app = FastAPI(
        title="Custos orchestrator", version="1", lifespan=lifespan, dependencies=[Depends(authorize)]
    )
    app.state.services = services

    @app.exception_handler(CustosError)
    async def _custos_error(request: Request, exc: CustosError) -> Response:
        if isinstance(exc, PermissionDenied):
            caller = getattr(request.state, "caller", None)
            who = caller.identity.name if caller is not None else "-"
            services.audit.append(
                user=who, action="denied", message=f"{request.method} {request.url.path}: {exc}"
            )
        if is_page(request):
            return page_error(request, exc)
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": first_error(exc.errors())}, status_code=400)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if is_unavailable(exc):
            return JSONResponse(
                {"detail": services.db.outage.unavailable(exc)}, status_code=Unavailable.status
            )
        log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error: the database refused a statement"}, status_code=500)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"description": "the metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
        },
    )
    def metrics() -> Response:
        """Prometheus metrics, for project admins (a kit or API token); docs/operations.md."""
        return Response(services.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    for module in (
        routes_auth,
        routes_gateway,
        routes_research,
        routes_admin,
        routes_tokens,
        routes_releases,
        routes_code,
        routes_budget,
        routes_models,
    ):
        app.include_router(module.router)
    for router in ROUTERS:
        app.include_router(router)
    document_refusals(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, max_blob_bytes=settings.max_blob_bytes)
    # Outermost: a caller of another wire version is refused before its body is read.
    app.add_middleware(WireVersionCheck)
    app.add_middleware(SecurityHeaders)
    # Outermost of all: every request is counted, those refused by the checks above too.
    app.add_middleware(RequestMetrics, metrics=services.metrics)
    return app
