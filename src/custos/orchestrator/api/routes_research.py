"""Routes for users: datasets, compute specs and jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from custos.core.states import JobState
from custos.core.wire import (
    DatasetInfo,
    JobCreate,
    JobPage,
    JobPublic,
    JobResult,
    MockTable,
    SignedPolicy,
    SitePublic,
    SpecCreate,
    SpecPublic,
)
from custos.orchestrator.api.context import OCTET_STREAM, BlobDigest, ServicesDep, UserDep
from custos.orchestrator.services.job_list import DEFAULT_LIMIT, MAX_LIMIT, JobFilter, list_jobs

router = APIRouter(prefix="/api/v1", tags=["research"])


@router.get("/datasets")
def list_datasets(_: UserDep, services: ServicesDep, q: str | None = None) -> list[DatasetInfo]:
    """Every dataset; with `q`, only those matching every word of it, best match first. Those of an
    offline gateway say since when it is offline."""

    def read(session: Session) -> list[DatasetInfo]:
        found = services.datasets.list(session) if q is None else services.datasets.search(session, q)
        return services.sites.with_health(session, found)

    return services.run(read)


@router.get("/sites")
def list_sites(_: UserDep, services: ServicesDep) -> list[SitePublic]:
    """Every gateway: its org, the release it runs, when it was last seen, whether it is online, and
    how many tasks it is working on."""
    return services.run(services.sites.list)


@router.get("/datasets/{gateway}/{name}")
def get_dataset(gateway: str, name: str, _: UserDep, services: ServicesDep) -> DatasetInfo:
    return services.run(
        lambda s: services.sites.with_health(s, [services.datasets.get(s, f"{gateway}/{name}")])[0]
    )


@router.get("/datasets/{gateway}/{name}/mock")
def get_mock(gateway: str, name: str, _: UserDep, services: ServicesDep) -> MockTable:
    return services.run(lambda s: services.datasets.mock(s, f"{gateway}/{name}"))


@router.put("/datasets/{gateway}/{name}/policy")
def put_policy(
    gateway: str, name: str, body: SignedPolicy, caller: UserDep, services: ServicesDep
) -> DatasetInfo:
    """Replace the dataset's policy with a newer one that an org admin of its org signed."""
    return services.run(lambda s: services.datasets.put_policy(s, caller.identity, f"{gateway}/{name}", body))


@router.post("/specs", status_code=201)
def create_spec(body: SpecCreate, caller: UserDep, services: ServicesDep) -> SpecPublic:
    return services.run(lambda s: services.specs.create(s, caller.identity, body))


@router.get("/specs")
def list_specs(caller: UserDep, services: ServicesDep) -> list[SpecPublic]:
    return services.run(lambda s: services.specs.list(s, caller.identity))


@router.get("/specs/{spec_id}")
def get_spec(spec_id: str, caller: UserDep, services: ServicesDep) -> SpecPublic:
    return services.run(lambda s: services.specs.get(s, caller.identity, spec_id))


@router.post("/specs/{spec_id}/activate")
def activate_spec(spec_id: str, caller: UserDep, services: ServicesDep) -> SpecPublic:
    return services.run(lambda s: services.specs.activate(s, caller.identity, spec_id))


@router.post("/specs/{spec_id}/deactivate")
def deactivate_spec(spec_id: str, caller: UserDep, services: ServicesDep) -> SpecPublic:
    return services.run(lambda s: services.specs.deactivate(s, caller.identity, spec_id))


@router.post("/jobs", status_code=201)
def submit_job(body: JobCreate, caller: UserDep, services: ServicesDep) -> JobPublic:
    return services.run(
        lambda s: services.sites.job_waiting(s, services.jobs.submit(s, caller.identity, body))
    )


@router.get("/jobs")
def get_jobs(
    caller: UserDep,
    services: ServicesDep,
    state: Annotated[list[JobState], Query(description="only jobs in one of these states")] = [],  # noqa: B006
    spec: Annotated[str | None, Query(description="only jobs of this compute spec")] = None,
    since: Annotated[datetime | None, Query(description="only jobs created at or after (ISO, zoned)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=400, description="the last page's next_cursor")] = None,
) -> JobPage:
    """The jobs the caller may list, newest first: researchers their own, org admins their org's,
    project admins all."""
    where = JobFilter(states=state, spec_id=spec, since=since, limit=limit, cursor=cursor)
    return services.run(lambda s: list_jobs(s, caller.identity, where))


@router.get("/jobs/{job_id}")
def get_job(job_id: str, caller: UserDep, services: ServicesDep) -> JobPublic:
    return services.run(
        lambda s: services.sites.job_waiting(s, services.jobs.get(s, caller.identity, job_id))
    )


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: str, caller: UserDep, services: ServicesDep) -> JobPublic:
    return services.run(lambda s: services.jobs.cancel(s, caller.identity, job_id))


@router.get("/jobs/{job_id}/result")
def get_result(job_id: str, caller: UserDep, services: ServicesDep) -> JobResult:
    return services.run(lambda s: services.jobs.result(s, caller.identity, job_id))


@router.get("/jobs/{job_id}/blobs/{digest}", response_class=Response)
def get_result_blob(job_id: str, digest: BlobDigest, caller: UserDep, services: ServicesDep) -> Response:
    """A blob the job's result refers to (its model's weights), as raw bytes."""
    data = services.run(lambda s: services.jobs.result_blob(s, caller.identity, job_id, digest))
    return Response(content=data, media_type=OCTET_STREAM)
