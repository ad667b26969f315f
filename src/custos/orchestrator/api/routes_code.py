"""Routes for custom code requests: submit, list and show, review (approve or deny), and run."""

from __future__ import annotations

from fastapi import APIRouter

from custos.core.errors import Conflict, ContentRefused, NotFound
from custos.core.wire import (
    CodeRequestCreate,
    CodeRequestDetail,
    CodeRequestPublic,
    CodeReviewCreate,
    JobPublic,
)
from custos.orchestrator.api.context import ServicesDep, UserDep
from custos.orchestrator.api.responses import refusals

router = APIRouter(prefix="/api/v1", tags=["code"])


@router.post("/code", responses=refusals(ContentRefused, NotFound))
def submit_code(body: CodeRequestCreate, caller: UserDep, services: ServicesDep) -> CodeRequestDetail:
    """Submit a function's exact source for review against datasets whose policies accept custom code."""
    return services.run(lambda s: services.code.submit(s, caller.identity, body))


@router.get("/code")
def list_code(caller: UserDep, services: ServicesDep) -> list[CodeRequestPublic]:
    """Your code requests and those you may review, oldest first."""
    return services.run(lambda s: services.code.list_visible(s, caller.identity))


@router.get("/code/{request_id}")
def get_code(request_id: str, caller: UserDep, services: ServicesDep) -> CodeRequestDetail:
    """A code request with its exact source, parameters, datasets and decisions."""
    return services.run(lambda s: services.code.get(s, caller.identity, request_id))


@router.post("/code/{request_id}/approve", responses=refusals(Conflict))
def approve_code(
    request_id: str, body: CodeReviewCreate, caller: UserDep, services: ServicesDep
) -> CodeRequestDetail:
    """Approve for your org, with the approval signed by your kit's key."""
    return services.run(lambda s: services.code.review(s, caller.identity, request_id, "approve", body))


@router.post("/code/{request_id}/deny", responses=refusals(Conflict))
def deny_code(
    request_id: str, body: CodeReviewCreate, caller: UserDep, services: ServicesDep
) -> CodeRequestDetail:
    """Deny with a reason; the request can no longer run."""
    return services.run(lambda s: services.code.review(s, caller.identity, request_id, "deny", body))


@router.post("/code/{request_id}/run", responses=refusals(Conflict))
def run_code(request_id: str, caller: UserDep, services: ServicesDep) -> JobPublic:
    """Run approved code as a job; its outputs are held for release review."""
    return services.run(lambda s: services.code.run(s, caller.identity, request_id))
