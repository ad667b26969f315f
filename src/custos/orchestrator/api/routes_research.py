"""Routes for users: datasets, compute specs and jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from custos.core.errors import Conflict, NotFound
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
from custos.orchestrator.api.context import (
    BLOB_ANSWER,
    OCTET_STREAM,
    BlobDigest,
    NamePath,
    ServicesDep,
    UserDep,
)
from custos.orchestrator.api.responses import refusals
from custos.orchestrator.services.datasets import MAX_SEARCH_CHARS
from custos.orchestrator.services.job_list import (
    CURSOR_PATTERN,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    JobFilter,
    list_jobs,
)

router = APIRouter(prefix="/api/v1", tags=["research"])

# A search as `search_words` accepts it: at most MAX_SEARCH_CHARS, with a character that Python's
# `str.split` does not take for a space (the pattern's \S, less the separators Python adds to it).
SearchQuery = Annotated[
    str | None,
    Query(
        description="words that must all occur",
        json_schema_extra={"maxLength": MAX_SEARCH_CHARS, "pattern": r"[^\s\x1c-\x1f\x85]"},
    ),
]


@router.get("/datasets")
def list_datasets(_: UserDep, services: ServicesDep, q: SearchQuery = None) -> list[DatasetInfo]:
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
def get_dataset(gateway: NamePath, name: NamePath, _: UserDep, services: ServicesDep) -> DatasetInfo:
    return services.run(
        lambda s: services.sites.with_health(s, [services.datasets.get(s, f"{gateway}/{name}")])[0]
    )


@router.get("/datasets/{gateway}/{name}/mock")
def get_mock(gateway: NamePath, name: NamePath, _: UserDep, services: ServicesDep) -> MockTable:
    return services.run(lambda s: services.datasets.mock(s, f"{gateway}/{name}"))


@router.put("/datasets/{gateway}/{name}/policy")
def put_policy(
    gateway: NamePath, name: NamePath, body: SignedPolicy, caller: UserDep, services: ServicesDep
) -> DatasetInfo:
    """Replace the dataset's policy with a newer one that an org admin of its org signed."""
    return services.run(lambda s: services.datasets.put_policy(s, caller.identity, f"{gateway}/{name}", body))


@router.post("/specs", status_code=201, responses=refusals(NotFound))
def create_spec(body: SpecCreate, caller: UserDep, services: ServicesDep) -> SpecPublic:
    return services.run(lambda s: services.specs.create(s, caller.identity, body))


@router.get("/specs")
def list_specs(caller: UserDep, services: ServicesDep) -> list[SpecPublic]:
    return services.run(lambda s: services.specs.list(s, caller.identity))


@router.get("/specs/{spec_id}")
def get_spec(spec_id: str, caller: UserDep, services: ServicesDep) -> SpecPublic:
    return services.run(lambda s: services.specs.get(s, caller.identity, spec_id))


@router.post("/specs/{spec_id}/activate", responses=refusals(Conflict))
def activate_spec(spec_id: str, caller: UserDep, services: ServicesDep) -> SpecPublic:
    return services.run(lambda s: services.specs.activate(s, caller.identity, spec_id))


@router.post("/specs/{spec_id}/deactivate", responses=refusals(Conflict))
def deactivate_spec(spec_id: str, caller: UserDep, services: ServicesDep) -> SpecPublic:
    return services.run(lambda s: services.specs.deactivate(s, caller.identity, spec_id))


@router.post("/jobs", status_code=201, responses=refusals(NotFound, Conflict))
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
    cursor: Annotated[
        str | None,
        Query(json_schema_extra={"pattern": CURSOR_PATTERN}, description="the last page's next_cursor"),
    ] = None,
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


@router.post("/jobs/{job_id}/cancel", responses=refusals(Conflict))
def cancel_job(job_id: str, caller: UserDep, services: ServicesDep) -> JobPublic:
    return services.run(lambda s: services.jobs.cancel(s, caller.identity, job_id))


@router.get("/jobs/{job_id}/result", responses=refusals(Conflict))
def get_result(job_id: str, caller: UserDep, services: ServicesDep) -> JobResult:
    return services.run(lambda s: services.jobs.result(s, caller.identity, job_id))


@router.get("/jobs/{job_id}/blobs/{digest}", response_class=Response, responses=BLOB_ANSWER)
def get_result_blob(job_id: str, digest: BlobDigest, caller: UserDep, services: ServicesDep) -> Response:
    """A blob the job's result refers to (its model's weights), as raw bytes."""
    data = services.run(lambda s: services.jobs.result_blob(s, caller.identity, job_id, digest))
    return Response(content=data, media_type=OCTET_STREAM)
