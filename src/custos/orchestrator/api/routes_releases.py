"""Routes for release reviewers: held results, their provenance, and the votes that release them;
and the custom code logs a custodian releases to the job's researcher."""

from __future__ import annotations

from fastapi import APIRouter, Response

from custos.core.errors import Conflict
from custos.core.states import ReleaseState
from custos.core.wire import (
    HELD_RESULT,
    HeldOutput,
    HeldOutputView,
    ReleaseDecision,
    ReleaseDetail,
    ReleasedLogCreate,
    ReleasedLogPublic,
    ReleasePublic,
    ReleaseVoteCreate,
)
from custos.orchestrator.api.context import BLOB_ANSWER, OCTET_STREAM, BlobDigest, ServicesDep, UserDep
from custos.orchestrator.api.responses import refusals

router = APIRouter(prefix="/api/v1", tags=["releases"])


@router.get("/releases")
def list_releases(
    caller: UserDep, services: ServicesDep, state: ReleaseState | None = None
) -> list[ReleasePublic]:
    """The releases you may review, oldest first; `state` keeps those in one state."""
    return services.run(lambda s: services.releases.list(s, caller.identity, state))


@router.get("/releases/{release_id}")
def get_release(release_id: str, caller: UserDep, services: ServicesDep) -> ReleaseDetail:
    """A release with its held result, the job's model, parameters and columns, and the votes so far."""
    return services.run(lambda s: services.releases.get(s, caller.identity, release_id))


@router.get("/releases/{release_id}/outputs")
def list_held_outputs(release_id: str, caller: UserDep, services: ServicesDep) -> list[HeldOutput]:
    """The release's outputs you review, without content: each site's output of your org (custom
    code's, a package's), or the one pooled `result` (a model's)."""
    return services.run(lambda s: services.held_outputs.list(s, caller.identity, release_id))


@router.get("/releases/{release_id}/outputs/result")
def get_held_result(release_id: str, caller: UserDep, services: ServicesDep) -> HeldOutputView:
    """A pooled held result with its content (audited)."""
    return services.run(lambda s: services.held_outputs.get(s, caller.identity, release_id, HELD_RESULT))


@router.get("/releases/{release_id}/outputs/{gateway}/{dataset}")
def get_held_output(
    release_id: str, gateway: str, dataset: str, caller: UserDep, services: ServicesDep
) -> HeldOutputView:
    """One site's held output with its content (audited); only a reviewer of that site's org sees it."""
    name = f"{gateway}/{dataset}"
    return services.run(lambda s: services.held_outputs.get(s, caller.identity, release_id, name))


@router.get("/releases/{release_id}/blobs/{digest}", response_class=Response, responses=BLOB_ANSWER)
def get_held_blob(release_id: str, digest: BlobDigest, caller: UserDep, services: ServicesDep) -> Response:
    """The bytes a held output you review refers to (a file, a model's weights), raw (audited)."""
    data = services.run(lambda s: services.held_outputs.blob(s, caller.identity, release_id, digest))
    return Response(content=data, media_type=OCTET_STREAM)


def _vote(
    services: ServicesDep,
    caller: UserDep,
    release_id: str,
    decision: ReleaseDecision,
    body: ReleaseVoteCreate,
) -> ReleaseDetail:
    return services.run(lambda s: services.releases.vote(s, caller.identity, release_id, decision, body))


@router.post("/releases/{release_id}/approve", responses=refusals(Conflict))
def approve_release(
    release_id: str, body: ReleaseVoteCreate, caller: UserDep, services: ServicesDep
) -> ReleaseDetail:
    """Approve; the last approval the policy needs releases the result to the researcher."""
    return _vote(services, caller, release_id, ReleaseDecision.APPROVE, body)


@router.post("/releases/{release_id}/return", responses=refusals(Conflict))
def return_release(
    release_id: str, body: ReleaseVoteCreate, caller: UserDep, services: ServicesDep
) -> ReleaseDetail:
    """Send the result back to the researcher with a reason; it is not released and the job fails."""
    return _vote(services, caller, release_id, ReleaseDecision.RETURN, body)


@router.post("/releases/{release_id}/reject", responses=refusals(Conflict))
def reject_release(
    release_id: str, body: ReleaseVoteCreate, caller: UserDep, services: ServicesDep
) -> ReleaseDetail:
    """Refuse the release with a reason; the job fails."""
    return _vote(services, caller, release_id, ReleaseDecision.REJECT, body)


@router.post("/jobs/{job_id}/logs", status_code=201, responses=refusals(Conflict))
def release_log(
    job_id: str, body: ReleasedLogCreate, caller: UserDep, services: ServicesDep
) -> ReleasedLogPublic:
    """Release a failed custom code task's full log, as its gateway kept it, to the job's researcher.
    For a release reviewer of the gateway's org; never the job's author."""
    return services.run(lambda s: services.logs.release(s, caller.identity, job_id, body))


@router.get("/jobs/{job_id}/logs")
def list_logs(job_id: str, caller: UserDep, services: ServicesDep) -> list[ReleasedLogPublic]:
    """The logs released for a job, oldest first; before any release, none."""
    return services.run(lambda s: services.logs.list(s, caller.identity, job_id))
