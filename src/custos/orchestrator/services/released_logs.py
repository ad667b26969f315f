"""Released custom code logs: a failed task's full log, which its gateway kept, released by a custodian to
the job's researcher (for a confidential package: to the package's owner instead).

Until a log is released the researcher has only the error's category, class and line. Who may release
is who may review results for the gateway's org (`release.review`), never the job's author; a refusal
names no job (403 before the job is looked up), so ids cannot be probed. Who may read a released log is
who may download the job's result (`result.download`); a job of another org is missing (404).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.core.clock import Clock
from custos.core.errors import Conflict, NotFound, PermissionDenied
from custos.core.identity import Identity
from custos.core.wire import ReleasedLogCreate, ReleasedLogPublic
from custos.orchestrator.services.access import can_see, check_resource
from custos.orchestrator.tables import Gateway, Job, ModelPackage, ReleasedLog, Task
from custos.policy.permissions import Resource

RELEASE = "release.review"
READ = "result.download"


class ReleasedLogService:
    def __init__(self, clock: Clock, audit: AuditTrail) -> None:
        self._clock = clock
        self._audit = audit

    def release(
        self, session: Session, caller: Identity, job_id: str, body: ReleasedLogCreate
    ) -> ReleasedLogPublic:
        """Store `body.log` for the job's researcher. Releasing the same log again returns it unchanged;
        another text for a released attempt is a Conflict."""
        gateway = session.get(Gateway, body.gateway)
        if gateway is None:
            raise NotFound(f"unknown gateway {body.gateway}")
        if not can_see(RELEASE, caller, Resource(None, gateway.org)):
            raise PermissionDenied(
                f"{caller.role.value} {caller.name} of {caller.org} may not release logs of gateway "
                f"{gateway.name}: only a release reviewer of {gateway.org} may"
            )
        task = session.get(Task, body.task_id)
        ran_there = task is not None and task.job_id == job_id and task.gateway == gateway.name
        if task is None or not ran_there or body.attempt > task.attempt:
            raise NotFound(
                f"job {job_id} ran no task {body.task_id} (attempt {body.attempt}) at {gateway.name}"
            )
        job = session.get(Job, job_id)
        assert job is not None  # the task names it
        if caller.name.casefold() == job.submitter.casefold():
            raise PermissionDenied(
                f"{caller.name} submitted job {job_id}: the author of a job never releases its logs"
            )
        earlier = session.execute(
            select(ReleasedLog).where(ReleasedLog.task_id == task.id, ReleasedLog.attempt == body.attempt)
        ).scalar_one_or_none()
        if earlier is not None:
            if earlier.log != body.log:
                raise Conflict(
                    f"the log of task {task.id} (attempt {body.attempt}) was released by "
                    f"{earlier.released_by}, with other text; a released log is never replaced"
                )
            return _public(earlier)
        row = ReleasedLog(
            job_id=job_id,
            task_id=task.id,
            attempt=body.attempt,
            gateway=gateway.name,
            dataset=task.dataset,
            log=body.log,
            released_by=caller.name,
            org=caller.org,
            created_at=self._clock(),
        )
        session.add(row)
        session.flush()
        self._audit.append(
            user=caller.name,
            action="log_released",
            job=job_id,
            message=f"{gateway.name}/{task.dataset} {task.id} attempt {body.attempt}: "
            f"{len(body.log.encode('utf-8'))} bytes",
        )
        return _public(row)

    def list(self, session: Session, caller: Identity, job_id: str) -> list[ReleasedLogPublic]:
        """The logs released for the job, oldest first; none is an empty list."""
        job = session.get(Job, job_id)
        missing = f"unknown job {job_id}"
        if job is None:
            raise NotFound(missing)
        owner = confidential_owner(session, job.model)
        if owner is None:
            check_resource(READ, caller, Resource(job.submitter, job.org), missing)
        elif caller.name.casefold() != owner.casefold():
            # A confidential package's log may quote what its code did: it goes to the package's
            # owner, once a custodian released it, and to no one else (docs/confidential.md).
            raise NotFound(missing)
        rows = session.execute(
            select(ReleasedLog).where(ReleasedLog.job_id == job_id).order_by(ReleasedLog.id)
        ).scalars()
        return [_public(row) for row in rows]


def confidential_owner(session: Session, model: str) -> str | None:
    """The publisher of `model` (name@version) when it is a confidential package; else None."""
    name, _, version = model.partition("@")
    row = session.get(ModelPackage, (name, version))
    return row.signer if row is not None and row.confidential_json is not None else None


def _public(row: ReleasedLog) -> ReleasedLogPublic:
    return ReleasedLogPublic(
        job_id=row.job_id,
        gateway=row.gateway,
        dataset=row.dataset,
        task_id=row.task_id,
        attempt=row.attempt,
        log=row.log,
        released_by=row.released_by,
        org=row.org,
        released_at=row.created_at,
    )
