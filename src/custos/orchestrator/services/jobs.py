"""Jobs: submission checked against the spec and the published policies, rounds of per-gateway
tasks, and aggregation by the model when a round is complete."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.computations.base import (
    Final,
    NextRound,
    PartialRounds,
    strictest_rules,
)
from custos.computations.custom.model import CustomModel
from custos.computations.package.model import PackageModel
from custos.core.blobs import refs_in
from custos.core.clock import Clock
from custos.core.errors import Conflict, CustosError, NotFound
from custos.core.identity import Identity
from custos.core.ids import new_id
from custos.core.refs import parse_dataset_ref, parse_model_ref
from custos.core.states import JOB_MACHINE, JobState, TaskState
from custos.core.wire import JobCreate, JobPublic, JobResult, TaskKind, TaskPublic
from custos.orchestrator.metrics import OrchestratorMetrics
from custos.orchestrator.notifier import notify_after_commit
from custos.orchestrator.services.access import check_resource
from custos.orchestrator.services.blobs import JobBlobs
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.services.models import resolve_model
from custos.orchestrator.services.releases import held_message, hold_result
from custos.orchestrator.services.submission import check_submission
from custos.orchestrator.services.tasks import OPEN_STATES, fail_open_tasks, finish_job, new_task
from custos.orchestrator.tables import ComputeSpec, Job, Result, Task
from custos.policy.permissions import Resource
from custos.privacy.controls import DisclosureRules, PrivacyControls
from custos.privacy.filters import FilterChain, FilterContext, SitePrivacy, orchestrator_chain

log = logging.getLogger("custos.orchestrator")
# The key in a job's model_state that keeps the strictest disclosure rules of its datasets (no schema
# change: the model state is the job's JSON scratch space, and the orchestrator strips it before
# handing the state to the model).
DISCLOSURE_KEY = "_disclosure"
CUSTOM_MODEL_NAME = CustomModel.name


def job_public(session: Session, job: Job) -> JobPublic:
    # Only the columns shown: a status poll need not load (and decode) each task's input and result.
    tasks = session.execute(
        select(
            Task.id, Task.gateway, Task.dataset, Task.kind, Task.round, Task.state, Task.attempt, Task.error
        )
        .where(Task.job_id == job.id)
        .order_by(Task.round, Task.gateway)
    ).all()
    return JobPublic(
        id=job.id,
        spec_id=job.spec_id,
        model=job.model,
        state=job.state,
        round=job.round,
        reason=job.reason,
        submitter=job.submitter,
        org=job.org,
        created_at=job.created_at,
        finished_at=job.finished_at,
        tasks=[
            TaskPublic(
                id=t.id,
                gateway=t.gateway,
                dataset=t.dataset,
                kind=TaskKind(t.kind),
                round=t.round,
                state=t.state,
                attempt=t.attempt,
                error=t.error,
            )
            for t in tasks
        ],
    )


class JobService:
    def __init__(
        self,
        datasets: DatasetService,
        clock: Clock,
        audit: AuditTrail,
        blobs: JobBlobs,
        privacy: SitePrivacy | None = None,
        metrics: OrchestratorMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        # The orchestrator's own privacy.yaml: its task filters per scope (custos.privacy.filters).
        self._privacy = privacy or SitePrivacy()
        self._blobs = blobs
        self._audit = audit
        self._datasets = datasets
        self._clock = clock

    def submit(self, session: Session, caller: Identity, body: JobCreate) -> JobPublic:
        # Validate, then charge: what would fail the job after its sites spent budget fails it here.
        checked_job = check_submission(session, self._datasets, caller, body)
        spec, model, checked = checked_job.spec, checked_job.model, checked_job.datasets
        orchestrator_chain(self._privacy, body.params)  # a scope the orchestrator does not define: refused
        rules = [dataset.privacy.disclosure for dataset in checked.values()]
        min_count = max([1, *(rule.min_count for rule in rules)])
        now = self._clock()
        job = Job(
            id=new_id("job"),
            spec_id=spec.id,
            model=spec.model,
            params=dict(body.params),
            state=JobState.QUEUED,
            round=0,
            model_state={DISCLOSURE_KEY: strictest_rules(rules).model_dump(mode="json", exclude_unset=True)},
            min_count=min_count,
            reason=None,
            submitter=caller.name,
            org=caller.org,
            role=caller.role.value,
            created_at=now,
            finished_at=None,
        )
        session.add(job)
        session.flush()
        first = model.start(body.params)
        JOB_MACHINE.move(job, JobState.RUNNING)
        self._queue_round(session, job, spec, 0, first)
        self._audit.append(user=caller.name, action="job_submitted", job=job.id, message=f"spec {spec.id}")
        return job_public(session, job)

    def start(self, session: Session, job: Job, spec: ComputeSpec, first: NextRound) -> JobPublic:
        """Start a new job that another service built (a reviewed code request's): queue its first round."""
        session.add(job)
        session.flush()
        JOB_MACHINE.move(job, JobState.RUNNING)
        self._queue_round(session, job, spec, 0, first)
        self._audit.append(user=job.submitter, action="job_submitted", job=job.id, message=f"spec {spec.id}")
        return job_public(session, job)

    def _queue_round(
        self, session: Session, job: Job, spec: ComputeSpec, round_no: int, step: NextRound
    ) -> None:
        # The job's disclosure rules ride along in its model state, beside the model's own.
        kept = {DISCLOSURE_KEY: job.model_state[DISCLOSURE_KEY]} if DISCLOSURE_KEY in job.model_state else {}
        now = self._clock()
        chain = orchestrator_chain(self._privacy, job.params)
        outgoing = chain.filter_data(step.round_input, self._filter_context(job, step.round_input, chain))
        # Bytes in the state and the round input (weights) are kept once as the job's blobs.
        both = self._blobs.externalize_into(session, job.id, {"state": step.state, "input": outgoing}, now)
        state, round_input = both["state"], both["input"]
        job.round, job.model_state = round_no, {**state, **kept}
        gateways = []
        for ds_ref in spec.datasets:
            parsed = parse_dataset_ref(ds_ref)
            session.add(
                new_task(
                    TaskKind.COMPUTE,
                    spec.id,
                    job.id,
                    parsed.gateway,
                    parsed.dataset,
                    round_no,
                    round_input,
                    now,
                )
            )
            gateways.append(parsed.gateway)
        session.flush()
        notify_after_commit(session, gateways)

    def advance(self, session: Session, task: Task) -> None:
        """Move a job on after one of its tasks finished: fail it, wait, aggregate, or finish."""
        assert task.job_id is not None
        job = session.get(Job, task.job_id, with_for_update=True)  # one advance of a job at a time
        assert job is not None
        if job.state != JobState.RUNNING or task.round != job.round:
            return
        now = self._clock()
        ref = parse_model_ref(job.model)
        model = resolve_model(session, ref.name, ref.version)
        tasks = (
            session.execute(select(Task).where(Task.job_id == job.id, Task.round == job.round))
            .scalars()
            .all()
        )
        failed = [t for t in tasks if t.state == TaskState.FAILED]
        # A model that takes partial rounds goes on without failed sites while a quorum answers.
        quorum = model.quorum(job.params) if isinstance(model, PartialRounds) else len(tasks)
        if failed and len(tasks) - len(failed) < quorum:
            reason = "; ".join(f"{t.gateway} failed: {t.error}" for t in failed)
            if quorum < len(tasks):
                reason += f" (round {job.round} needs {quorum} of {len(tasks)} sites)"
            fail_open_tasks(session, job.id, now, "the job failed at another gateway")
            finish_job(job, JobState.FAILED, now, reason)
            self._blobs.collect_garbage(session, job)
            self._audit.append(user=job.submitter, action="job_failed", job=job.id, message=reason)
            return
        if task.state == TaskState.FAILED:
            self._audit.append(
                user=job.submitter,
                action="site_left_out",
                job=job.id,
                message=f"round {job.round} goes on without {task.gateway}: {task.error}",
            )
        if any(t.state in OPEN_STATES for t in tasks):
            return
        spec = session.get(ComputeSpec, job.spec_id)
        assert spec is not None
        try:
            chain = orchestrator_chain(self._privacy, job.params)
            site_results: dict[str, dict[str, Any]] = {
                f"{t.gateway}/{t.dataset}": chain.filter_result(
                    self._blobs.internalize_from(session, job.id, t.result or {}),
                    self._filter_context(job, t.round_input, chain),
                )
                for t in tasks
                if t.state == TaskState.DONE
            }
            state = self._blobs.internalize_from(session, job.id, dict(job.model_state))
            stored = state.pop(DISCLOSURE_KEY, None)
            rules = DisclosureRules.model_validate(stored) if stored is not None else job.min_count
            step = model.aggregate(job.params, state, site_results, rules)
            if self._metrics is not None:
                queued = min(t.created_at for t in tasks)
                self._metrics.round_latency.labels(ref.name).observe(max(0.0, (now - queued).total_seconds()))
        except CustosError as exc:
            finish_job(job, JobState.FAILED, now, f"aggregation failed: {exc}")
            self._blobs.collect_garbage(session, job)
            return
        except Exception as exc:  # a model bug must fail its job, not the gateway's upload
            log.exception("aggregation of job %s failed", job.id)
            finish_job(
                job, JobState.FAILED, now, f"aggregation failed: internal error ({type(exc).__name__})"
            )
            self._blobs.collect_garbage(session, job)
            return
        if isinstance(step, Final):
            final = self._withhold_model(session, spec, step.result)
            result = self._blobs.externalize_into(session, job.id, final, now)
            session.add(Result(job_id=job.id, result=result, created_at=now))
            session.flush()
            self._blobs.collect_garbage(session, job)
            # Custom code's and published packages' outputs are always reviewed, whatever the policies'
            # `release` says: the code is not the custodian's.
            minimum = 1 if ref.name == CUSTOM_MODEL_NAME or isinstance(model, PackageModel) else 0
            release = hold_result(session, self._datasets, job, spec, now, minimum=minimum)
            if release is not None:
                JOB_MACHINE.move(job, JobState.AWAITING_RELEASE)
                self._audit.append(
                    user=job.submitter,
                    action="release_held",
                    job=job.id,
                    message=f"{release.id}: {release.required} reviewer(s) of {', '.join(release.orgs)}",
                )
                return
            finish_job(job, JobState.SUCCEEDED, now)
            self._audit.append(user=job.submitter, action="job_succeeded", job=job.id)
        else:
            self._queue_round(session, job, spec, job.round + 1, step)
            self._blobs.collect_garbage(session, job)

    @staticmethod
    def _filter_context(job: Job, round_input: dict[str, Any], chain: FilterChain) -> FilterContext:
        model = parse_model_ref(job.model).name
        return FilterContext(model, job.params, round_input, PrivacyControls(), chain.scope)

    def _withhold_model(self, session: Session, spec: ComputeSpec, result: dict[str, Any]) -> dict[str, Any]:
        """The result without its model weights unless every dataset's policy allows model release."""
        if result.get("weights") is None:
            return result
        refusing = [
            ref
            for ref in spec.datasets
            if not (policy := self._datasets.policy(session, self._datasets.get_row(session, ref).id))
            or not policy.model_release
        ]
        if not refusing:
            return result
        reason = f"the policy of {', '.join(refusing)} does not allow model release (model_release: false)"
        return {**result, "weights": None, "weights_withheld": reason}

    def get_row(self, session: Session, caller: Identity, job_id: str, operation: str = "job.view") -> Job:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"unknown job {job_id}")
        check_resource(operation, caller, Resource(job.submitter, job.org), f"unknown job {job_id}")
        return job

    def get(self, session: Session, caller: Identity, job_id: str) -> JobPublic:
        return job_public(session, self.get_row(session, caller, job_id))

    def cancel(self, session: Session, caller: Identity, job_id: str) -> JobPublic:
        """Stop a queued or running job: its open tasks fail, and a late result is refused."""
        job = self.get_row(session, caller, job_id, "job.cancel")
        now = self._clock()
        finish_job(job, JobState.CANCELLED, now, f"cancelled by {caller.name}")
        fail_open_tasks(session, job.id, now, "the job was cancelled")
        self._blobs.collect_garbage(session, job)
        self._audit.append(user=caller.name, action="job_cancelled", job=job.id)
        return job_public(session, job)

    def result(self, session: Session, caller: Identity, job_id: str) -> JobResult:
        job = self.get_row(session, caller, job_id, "result.download")
        if job.state == JobState.FAILED:
            raise Conflict(f"job {job_id} failed: {job.reason}")
        if job.state == JobState.AWAITING_RELEASE:
            raise Conflict(held_message(session, job_id))
        if job.state != JobState.SUCCEEDED:
            raise Conflict(f"job {job_id} is {job.state}; its result is not ready")
        row = session.get(Result, job_id)
        assert row is not None
        self._audit.append(user=caller.name, action="result_download", job=job_id)
        return JobResult(job_id=job_id, model=job.model, result=row.result)

    def result_blob(self, session: Session, caller: Identity, job_id: str, digest: str) -> bytes:
        """A blob the job's result refers to (its model weights), under the result's own rules."""
        self.result(session, caller, job_id)
        row = session.get(Result, job_id)
        assert row is not None
        if digest not in refs_in(row.result):
            raise NotFound(f"the result of job {job_id} has no blob {digest}")
        return self._blobs.read(session, job_id, digest)
