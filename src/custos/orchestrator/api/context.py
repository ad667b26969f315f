"""What every route needs: the database, the services, and the verified caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.core.errors import AuthenticationFailed, PermissionDenied
from custos.core.identity import ParticipantKind
from custos.orchestrator.db import Database
from custos.orchestrator.notifier import TaskNotifier, pending_notifications
from custos.orchestrator.services.auth import AuthService, Caller
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.services.jobs import JobService
from custos.orchestrator.services.specs import SpecService
from custos.orchestrator.services.tasks import TaskService
from custos.orchestrator.settings import OrchestratorSettings

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

    def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in one transaction; after it commits, wake the gateways it queued work for."""
        with self.db.session() as session:
            value = fn(session)
            notify = pending_notifications(session)
        self.notifier.notify(notify)
        return value


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_caller(request: Request, services: ServicesDep) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed(
            "sign in first: send Authorization: Bearer <token> from /api/v1/auth/token"
        )
    caller = services.run(lambda s: services.auth.caller(s, token.strip()))
    request.state.caller = caller  # for the audit line of a refusal
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


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
