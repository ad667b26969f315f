"""Routes for the privacy budget: the read-only mirror of the gateways' ledgers, and a job's cost
preview."""

from __future__ import annotations

from fastapi import APIRouter

from custos.core.errors import Conflict, NotFound
from custos.core.wire import BudgetPublic, JobCreate, JobPreview
from custos.orchestrator.api.context import ServicesDep, UserDep
from custos.orchestrator.api.responses import refusals

router = APIRouter(prefix="/api/v1", tags=["budget"])


@router.get("/budget")
def list_budget(caller: UserDep, services: ServicesDep) -> list[BudgetPublic]:
    """What you and your org have spent per dataset (org admins: on their org's datasets; project
    admins: all), as the gateways last reported it; each row says when it was last reconciled to its
    gateway's ledger and what may not be mirrored yet."""
    return services.run(lambda s: services.reconciler.with_lag(s, services.budget.list(s, caller.identity)))


@router.post("/jobs/preview", responses=refusals(NotFound, Conflict))
def preview_job(body: JobCreate, caller: UserDep, services: ServicesDep) -> JobPreview:
    """What the job would spend per dataset and what would remain; nothing runs, nothing is recorded."""
    return services.run(lambda s: services.budget.preview(s, caller.identity, body))
