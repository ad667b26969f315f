"""Tasks: leasing to gateways, idempotent result upload, and advancing specs and jobs.

A lease that expires, or that its gateway no longer holds when it polls, returns its task to pending
with the next attempt, at most `max_attempts` times.
A result upload is idempotent on (task id, digest): a repeat is acknowledged (a gateway re-sends the
result it journaled at an earlier attempt as the result of the current one), a different digest for a
finished task is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.core.blobs import check_blob, refs_in
from custos.core.clock import Clock
from custos.core.errors import Conflict, InvalidInput, NotFound
from custos.core.ids import new_id
from custos.core.states import JOB_MACHINE, SPEC_MACHINE, TASK_MACHINE, JobState, SpecState, TaskState
from custos.core.wire import (
    Ack,
    Resources,
    Submitter,
    TaskAssignment,
    TaskKind,
    TaskResultUpload,
    TaskStanding,
    result_digest,
)
from custos.orchestrator.metrics import OrchestratorMetrics
from custos.orchestrator.services.blobs import JobBlobs
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.tables import ComputeSpec, Job, Task

log = logging.getLogger(__name__)

OPEN_STATES = (TaskState.PENDING, TaskState.LEASED, TaskState.RUNNING)


def new_task(
    kind: TaskKind,
    spec_id: str,
    job_id: str | None,
    gateway: str,
    dataset: str,
    round_no: int,
    round_input: dict[str, Any],
    now: datetime,
) -> Task:
    return Task(
        id=new_id("task"),
        kind=kind.value,
        spec_id=spec_id,
        job_id=job_id,
        gateway=gateway,
        dataset=dataset,
        round=round_no,
        round_input=round_input,
        state=TaskState.PENDING,
        attempt=1,
        max_attempts=3,
        lease_expires_at=None,
        result=None,
        result_digest=None,
        error=None,
        created_at=now,
        updated_at=now,
    )


def set_task_state(task: Task, target: TaskState, now: datetime) -> None:
    TASK_MACHINE.move(task, target)
    task.updated_at = now


# Called after a task finishes, to move its spec or job on. Set by the job service.
Advance = Callable[[Session, Task], None]


class TaskService:
    def __init__(
        self,
        clock: Clock,
        lease_margin_s: int,
        audit: AuditTrail,
        datasets: DatasetService,
        blobs: JobBlobs,
        metrics: OrchestratorMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._blobs = blobs
        self._clock = clock
        self._datasets = datasets
        self._audit = audit
        self._lease_margin_s = lease_margin_s
        self.advance_job: Advance | None = None
        # Copies a finished DP task's budget report into the read-only mirror. Set by the app.
        self.mirror_budget: Advance | None = None

    def _reclaim(self, session: Session, gateway: str, now: datetime, held: Collection[str]) -> None:
        """Give the gateway's expired leases, and the leases it no longer holds, to a next attempt.

        A lease the gateway does not list was lost on the way (the orchestrator stopped after
        granting it, or the poll's answer was dropped): waiting out its expiry would stall the job.
        """
        open_leases = (
            session.execute(
                select(Task).where(
                    Task.gateway == gateway,
                    Task.state.in_([TaskState.LEASED, TaskState.RUNNING]),
                )
            )
            .scalars()
            .all()
        )
        for task in open_leases:
            expired = task.lease_expires_at is not None and task.lease_expires_at < now
            if not expired and task.id in held:
                continue
            if task.job_id is not None:
                session.get(Job, task.job_id, with_for_update=True)  # the job's row before its task's
                session.refresh(task, with_for_update=True)
                if task.state not in (TaskState.LEASED, TaskState.RUNNING):
                    continue  # finished meanwhile
            if not expired:
                log.info("task %s attempt %d: %s no longer holds its lease", task.id, task.attempt, gateway)
            if self._metrics is not None:
                (self._metrics.lease_expiries if expired else self._metrics.lost_leases).inc()
                if task.attempt < task.max_attempts:
                    self._metrics.retries.inc()
            if task.attempt < task.max_attempts:
                set_task_state(task, TaskState.PENDING, now)
                task.attempt += 1
                task.lease_expires_at = None
            else:
                set_task_state(task, TaskState.FAILED, now)
                task.error = f"{gateway} did not finish the task in {task.max_attempts} attempts"
                self._advance(session, task)

    def lease(self, session: Session, gateway: str, held: Collection[str] = ()) -> TaskAssignment | None:
        """Lease the gateway's oldest pending task. `held` lists the tasks the gateway still works on;
        its other open leases are reclaimed first."""
        now = self._clock()
        self._reclaim(session, gateway, now, held)
        candidates = (
            session.execute(
                select(Task)
                .where(Task.gateway == gateway, Task.state == TaskState.PENDING)
                .order_by(Task.created_at)
                .limit(5)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        for task in candidates:
            spec = session.get(ComputeSpec, task.spec_id)
            assert spec is not None
            resources = Resources.model_validate(spec.resources)
            # The pending -> leased move as one compare-and-set UPDATE rather than TASK_MACHINE.move:
            # of two polls racing for one task (SQLite takes no row locks), exactly one wins.
            claimed = session.execute(
                update(Task)
                .where(Task.id == task.id, Task.state == TaskState.PENDING)
                .values(
                    state=TaskState.LEASED,
                    updated_at=now,
                    lease_expires_at=now
                    + timedelta(seconds=resources.lease_wall_seconds() + self._lease_margin_s),
                )
                .execution_options(synchronize_session="fetch")
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                event = self._audit.append(
                    user=gateway, action="task_leased", job=task.job_id,
                    message=f"{task.id} ({task.kind}, round {task.round}, attempt {task.attempt})",
                )  # fmt: skip
                return self._assignment(session, task, spec, resources, event)
        return None

    def _assignment(
        self, session: Session, task: Task, spec: ComputeSpec, resources: Resources, event: str
    ) -> TaskAssignment:
        job = session.get(Job, task.job_id) if task.job_id else None
        submitter = (
            Submitter(name=job.submitter, org=job.org, role=job.role)
            if job
            else Submitter(name=spec.owner, org=spec.org, role=spec.owner_role)
        )
        return TaskAssignment(
            task_id=task.id,
            attempt=task.attempt,
            kind=TaskKind(task.kind),
            spec_id=spec.id,
            job_id=task.job_id,
            round=task.round,
            model=spec.model,
            dataset=task.dataset,
            columns=spec.columns,
            params=job.params if job else {},
            round_input=task.round_input,
            submitter=submitter,
            resources=resources,
            audit_event=event,
            policy=self._datasets.signed_policy(session, f"{task.gateway}/{task.dataset}"),
        )

    def _owned(self, session: Session, gateway: str, task_id: str, *, lock: bool = True) -> Task:
        task = session.get(Task, task_id, with_for_update=lock)
        if task is None or task.gateway != gateway:
            raise NotFound(f"unknown task {task_id}")
        return task

    def start(self, session: Session, gateway: str, task_id: str, attempt: int) -> Ack:
        task = self._owned(session, gateway, task_id)
        if task.attempt != attempt:
            raise Conflict(f"task {task_id} is at attempt {task.attempt}, not {attempt}")
        if task.state == TaskState.LEASED:
            set_task_state(task, TaskState.RUNNING, self._clock())
        return Ack()

    def ended_jobs(self, session: Session, gateway: str, job_ids: Collection[str]) -> list[str]:
        """Of `job_ids`, the jobs with a task at `gateway` that have ended: the gateway closes their
        runtimes. Another gateway's jobs are not told about."""
        if not job_ids:
            return []
        ended = select(Job.id).where(
            Job.id.in_(list(job_ids)),
            Job.state.in_([JobState.CANCELLED, JobState.FAILED, JobState.SUCCEEDED]),
            select(Task.id).where(Task.job_id == Job.id, Task.gateway == gateway).exists(),
        )
        return sorted(session.execute(ended).scalars())

    def extend_leases(self, session: Session, gateway: str, task_ids: Collection[str] | None = None) -> None:
        """The gateway is alive and works on its leased tasks (all, or `task_ids`): each lease runs
        at least `lease_margin_s` from now, so a busy gateway never loses a task it is running (and
        no task is computed twice). A lease its gateway no longer holds is still reclaimed at the
        gateway's next poll, whose `held` list leaves it out."""
        now = self._clock()
        until = now + timedelta(seconds=self._lease_margin_s)
        extend = (
            update(Task)
            .where(
                Task.gateway == gateway,
                Task.state.in_([TaskState.LEASED, TaskState.RUNNING]),
                Task.lease_expires_at < until,
            )
            .values(lease_expires_at=until)
            .execution_options(synchronize_session=False)
        )
        if task_ids is not None:
            extend = extend.where(Task.id.in_(list(task_ids)))
        session.execute(extend)

    def standing(self, session: Session, gateway: str, task_id: str) -> TaskStanding:
        """Whether the gateway should go on with the task: `stop` says why not (the task was failed
        here because its job was cancelled or failed at another site). The gateway asks while it works
        on the task, so its lease is extended."""
        task = self._owned(session, gateway, task_id, lock=False)
        self.extend_leases(session, gateway, [task_id])
        stop = (task.error or "the task failed") if task.state == TaskState.FAILED else None
        return TaskStanding(task_id=task.id, state=task.state, attempt=task.attempt, stop=stop)

    def record_result(self, session: Session, gateway: str, task_id: str, upload: TaskResultUpload) -> Ack:
        task = self._owned(session, gateway, task_id, lock=False)
        job = None
        if task.job_id is not None:
            # Locks in one order everywhere, the job's row before its tasks': a job's uploads and
            # advances go one at a time, and never deadlock with a reclaim.
            job = session.get(Job, task.job_id, with_for_update=True)
        session.refresh(task, with_for_update=True)
        if upload.digest != result_digest(upload.status, upload.result, upload.error):
            raise InvalidInput("digest does not match the uploaded result")
        if job is not None and job.state == JobState.CANCELLED and task.result_digest != upload.digest:
            raise Conflict(f"job {job.id} was cancelled; no result of it is accepted")
        if task.state in (TaskState.DONE, TaskState.FAILED):
            # The same result again, for this attempt or re-sent from the gateway's journal for a later
            # one: acknowledged. A different one is refused: one result per round of one site.
            if task.result_digest == upload.digest and upload.attempt <= task.attempt:
                return Ack(duplicate=True)
            raise Conflict(f"task {task_id} already finished with a different result")
        if task.attempt != upload.attempt:
            raise Conflict(f"task {task_id} is at attempt {task.attempt}, not {upload.attempt}")
        now = self._clock()
        if upload.status == "done" and upload.result is not None:
            refs = refs_in(upload.result)
            missing = self._blobs.missing(session, task.job_id, refs) if task.job_id else sorted(refs)
            if missing:
                raise InvalidInput(
                    f"the result refers to a blob not uploaded for task {task_id}: {missing[0]}"
                )
        task.result_digest = upload.digest
        if upload.status == "done":
            if upload.result is None:
                raise InvalidInput("a task reported done must carry a result")
            set_task_state(task, TaskState.DONE, now)
            task.result = upload.result
            if self.mirror_budget is not None:
                self.mirror_budget(session, task)
        else:
            set_task_state(task, TaskState.FAILED, now)
            task.error = upload.error or "the gateway reported a failure without a reason"
        session.flush()
        if self._metrics is not None:
            latency = (now - task.created_at).total_seconds()
            self._metrics.task_latency.labels(task.kind, upload.status).observe(max(0.0, latency))
        self._audit.append(
            user=gateway,
            action=f"task_{upload.status}",
            job=task.job_id,
            message=f"{task.id}: {task.error or 'ok'}",
        )
        self._advance(session, task)
        return Ack()

    def put_blob(self, session: Session, gateway: str, task_id: str, digest: str, data: bytes) -> Ack:
        """Keep a blob of the task's result, uploaded before the result that refers to it."""
        task = self._owned(session, gateway, task_id)
        if task.job_id is None:
            raise InvalidInput(f"task {task_id} is not a job's task and takes no blobs")
        if task.state not in (TaskState.LEASED, TaskState.RUNNING):
            raise Conflict(
                f"task {task_id} is {task.state}; it takes no more blobs: {task.error or 'finished'}"
            )
        check_blob(digest, len(data), data)
        self._blobs.store(session, task.job_id, {digest: data}, self._clock())
        return Ack()

    def round_input_blob(self, session: Session, gateway: str, task_id: str, digest: str) -> bytes:
        """A blob the task's round input refers to (the round's global weights)."""
        task = self._owned(session, gateway, task_id, lock=False)
        if task.job_id is None or digest not in refs_in(task.round_input):
            raise NotFound(f"task {task_id} has no blob {digest}")
        return self._blobs.read(session, task.job_id, digest)

    def _advance(self, session: Session, task: Task) -> None:
        if task.kind == TaskKind.PREPARE.value:
            self._advance_spec(session, task)
        elif self.advance_job is not None:
            self.advance_job(session, task)

    def _advance_spec(self, session: Session, task: Task) -> None:
        spec = session.get(ComputeSpec, task.spec_id, with_for_update=True)
        assert spec is not None
        if spec.state != SpecState.ACTIVATING:
            return
        tasks = (
            session.execute(select(Task).where(Task.spec_id == spec.id, Task.kind == TaskKind.PREPARE.value))
            .scalars()
            .all()
        )
        failed = [t for t in tasks if t.state == TaskState.FAILED]
        now = self._clock()
        if failed:
            SPEC_MACHINE.move(spec, SpecState.FAILED)
            spec.reason = "; ".join(f"{t.gateway} refused: {t.error}" for t in failed)
            self._audit.append(user=spec.owner, action="spec_failed", message=f"{spec.id}: {spec.reason}")
            for t in tasks:
                if t.state in OPEN_STATES:
                    set_task_state(t, TaskState.FAILED, now)
                    t.error = "activation failed at another gateway"
        elif all(t.state == TaskState.DONE for t in tasks):
            SPEC_MACHINE.move(spec, SpecState.ACTIVE)
            self._audit.append(user=spec.owner, action="spec_active", message=spec.id)
        spec.updated_at = now


def fail_open_tasks(session: Session, job_id: str, now: datetime, reason: str) -> None:
    for t in session.execute(
        select(Task).where(Task.job_id == job_id, Task.state.in_(OPEN_STATES))
    ).scalars():
        set_task_state(t, TaskState.FAILED, now)
        t.error = reason


def finish_job(job: Job, target: JobState, now: datetime, reason: str | None = None) -> None:
    JOB_MACHINE.move(job, target)
    job.finished_at, job.reason = now, reason
