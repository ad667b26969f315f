"""Output release review: a finished job's result held until the reviewers of its datasets' orgs vote.

The strictest `release` of the job's datasets' policies decides: `one` or `two` distinct approvals.
Reviewers are the users who may perform `release.review` on one of those orgs; the job's author never
reviews, and a person votes once. One `return` or `reject` ends the review and fails the job with the
reason; the last approval needed releases the result and the job succeeds.
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.core.clock import Clock
from custos.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from custos.core.identity import Identity
from custos.core.ids import new_id
from custos.core.refs import parse_dataset_ref
from custos.core.states import RELEASE_MACHINE, JobState, ReleaseState
from custos.core.wire import ReleaseDecision, ReleaseDetail, ReleasePublic, ReleaseVote, ReleaseVoteCreate
from custos.orchestrator.services.access import can_see, check_resource
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.services.tasks import finish_job
from custos.orchestrator.tables import ComputeSpec, Gateway, Job, Release, ReleaseReview, Result
from custos.policy.permissions import Resource

REVIEWERS_NEEDED = {"none": 0, "one": 1, "two": 2}
OPEN_STATES = (ReleaseState.HELD, ReleaseState.PARTIALLY_REVIEWED)
OPERATION = "release.review"


def hold_result(
    session: Session,
    datasets: DatasetService,
    job: Job,
    spec: ComputeSpec,
    now: datetime,
    *,
    minimum: int = 0,
) -> Release | None:
    """Hold `job`'s stored result when a policy of its datasets asks for review; None when none does.
    `minimum` reviewers are needed whatever the policies say (custom code's outputs: one).

    A dataset whose policy was withdrawn while the job ran holds the result for two reviewers: no
    policy never means fewer checks."""
    required, orgs = 0, []
    for ref in spec.datasets:
        parsed = parse_dataset_ref(ref)
        policy = datasets.policy(session, str(parsed))
        needed = REVIEWERS_NEEDED[policy.release] if policy is not None else REVIEWERS_NEEDED["two"]
        needed = max(needed, minimum)
        if needed:
            required = max(required, needed)
            gateway = session.get(Gateway, parsed.gateway)
            assert gateway is not None  # it signed in to run the job's tasks
            if gateway.org not in orgs:
                orgs.append(gateway.org)
    if not required:
        return None
    release = Release(
        id=new_id("rel"),
        job_id=job.id,
        state=ReleaseState.HELD,
        required=required,
        orgs=orgs,
        reason=None,
        created_at=now,
        updated_at=now,
    )
    session.add(release)
    return release


def held_message(session: Session, job_id: str) -> str:
    """Why a job's result cannot be downloaded yet, with the review's progress."""
    release = session.execute(select(Release).where(Release.job_id == job_id)).scalar_one_or_none()
    if release is None:
        return f"the result of job {job_id} is held for release review"
    return (
        f"the result of job {job_id} is held for release review "
        f"({_approvals(session, release.id)} of {release.required} reviews)"
    )


def _approvals(session: Session, release_id: str) -> int:
    count = session.execute(
        select(func.count())
        .select_from(ReleaseReview)
        .where(
            ReleaseReview.release_id == release_id, ReleaseReview.decision == ReleaseDecision.APPROVE.value
        )
    ).scalar_one()
    return int(count)


def _is_author(caller: Identity, job: Job) -> bool:
    return caller.name.casefold() == job.submitter.casefold()


def _may_review(caller: Identity, release: Release, job: Job) -> bool:
    return not _is_author(caller, job) and any(
        can_see(OPERATION, caller, Resource(job.submitter, org)) for org in release.orgs
    )


class ReleaseService:
    def __init__(self, clock: Clock, audit: AuditTrail) -> None:
        self._clock = clock
        self._audit = audit

    def list(
        self, session: Session, caller: Identity, state: ReleaseState | None = None
    ) -> list[ReleasePublic]:
        """The releases `caller` may review (never those of its own jobs), oldest first."""
        query = select(Release, Job).join(Job, Job.id == Release.job_id).order_by(Release.created_at)
        if state is not None:
            query = query.where(Release.state == state)
        return [
            self._public(session, release, job)
            for release, job in session.execute(query)
            if _may_review(caller, release, job)
        ]

    def get(self, session: Session, caller: Identity, release_id: str) -> ReleaseDetail:
        release, job = self._reviewable(session, caller, release_id)
        return self._detail(session, release, job)

    def vote(
        self,
        session: Session,
        caller: Identity,
        release_id: str,
        decision: ReleaseDecision,
        body: ReleaseVoteCreate,
    ) -> ReleaseDetail:
        release, job = self._reviewable(session, caller, release_id, lock=True)
        reason = body.reason.strip()
        if decision is not ReleaseDecision.APPROVE and not reason:
            raise InvalidInput(f"reason is required to {decision.value} a release: tell the researcher why")
        if release.state not in OPEN_STATES:
            raise Conflict(f"release {release.id} is {release.state}; it takes no more votes")
        if job.state != JobState.AWAITING_RELEASE:
            raise Conflict(f"job {job.id} is {job.state}; its release takes no more votes")
        earlier = session.execute(
            select(ReleaseReview).where(
                ReleaseReview.release_id == release.id,
                func.lower(ReleaseReview.reviewer) == caller.name.casefold(),
            )
        ).scalar_one_or_none()
        if earlier is not None:
            raise Conflict(
                f"{caller.name} already voted {earlier.decision} on release {release.id}; "
                f"{'two distinct reviewers are' if release.required == 2 else 'another reviewer is'} needed"
            )
        now = self._clock()
        session.add(
            ReleaseReview(
                release_id=release.id,
                reviewer=caller.name,
                org=caller.org,
                decision=decision.value,
                reason=reason,
                created_at=now,
            )
        )
        session.flush()
        self._decide(session, caller, release, job, decision, reason, now)
        return self._detail(session, release, job)

    def _decide(
        self,
        session: Session,
        caller: Identity,
        release: Release,
        job: Job,
        decision: ReleaseDecision,
        reason: str,
        now: datetime,
    ) -> None:
        current = release.state
        match decision:
            case ReleaseDecision.APPROVE:
                approvals = _approvals(session, release.id)
                self._audit.append(
                    user=caller.name,
                    action="release_approved",
                    job=job.id,
                    message=f"{release.id}: {approvals} of {release.required}"
                    + (f": {reason}" if reason else ""),
                )
                if approvals < release.required:
                    target = ReleaseState.PARTIALLY_REVIEWED
                else:
                    target = ReleaseState.RELEASED
                    finish_job(job, JobState.SUCCEEDED, now)
                    self._audit.append(
                        user=caller.name, action="release_released", job=job.id, message=release.id
                    )
            case ReleaseDecision.RETURN:
                target = ReleaseState.RETURNED
                release.reason = f"returned by {caller.name}: {reason}"
                finish_job(job, JobState.FAILED, now, f"the result was {release.reason}")
                self._audit.append(
                    user=caller.name, action="release_returned", job=job.id, message=f"{release.id}: {reason}"
                )
            case ReleaseDecision.REJECT:
                target = ReleaseState.REJECTED
                release.reason = f"rejected by {caller.name}: {reason}"
                finish_job(job, JobState.FAILED, now, f"the result was {release.reason}")
                self._audit.append(
                    user=caller.name, action="release_rejected", job=job.id, message=f"{release.id}: {reason}"
                )
            case _:
                assert_never(decision)
        if target is not current:  # an approval still short of the required ones changes nothing
            RELEASE_MACHINE.move(release, target)
        release.updated_at = now

    def _reviewable(
        self, session: Session, caller: Identity, release_id: str, *, lock: bool = False
    ) -> tuple[Release, Job]:
        """The release and its job, if `caller` may review it: another org's is missing (404), and the
        author's own is refused (403)."""
        missing = f"unknown release {release_id}"
        release = session.get(Release, release_id, with_for_update=lock)
        if release is None:
            raise NotFound(missing)
        job = session.get(Job, release.job_id, with_for_update=lock)
        assert job is not None
        mine = caller.org.casefold()
        org = next((o for o in release.orgs if o.casefold() == mine), release.orgs[0])
        check_resource(OPERATION, caller, Resource(job.submitter, org), missing)
        if _is_author(caller, job):
            raise PermissionDenied(
                f"{caller.name} submitted job {job.id}: the author of a result never reviews its release"
            )
        return release, job

    def _public(self, session: Session, release: Release, job: Job) -> ReleasePublic:
        spec = session.get(ComputeSpec, job.spec_id)
        assert spec is not None
        return ReleasePublic(
            id=release.id,
            job_id=job.id,
            job_state=job.state,
            state=release.state,
            model=job.model,
            submitter=job.submitter,
            submitter_org=job.org,
            datasets=list(spec.datasets),
            orgs=list(release.orgs),
            required=release.required,
            approvals=_approvals(session, release.id),
            reason=release.reason,
            created_at=release.created_at,
            updated_at=release.updated_at,
        )

    def _detail(self, session: Session, release: Release, job: Job) -> ReleaseDetail:
        spec = session.get(ComputeSpec, job.spec_id)
        result = session.get(Result, job.id)
        assert spec is not None and result is not None
        votes = session.execute(
            select(ReleaseReview).where(ReleaseReview.release_id == release.id).order_by(ReleaseReview.id)
        ).scalars()
        return ReleaseDetail(
            **self._public(session, release, job).model_dump(),
            spec_id=spec.id,
            params=dict(job.params),
            columns=list(spec.columns),
            result=dict(result.result),
            votes=[
                ReleaseVote(
                    reviewer=v.reviewer,
                    org=v.org,
                    decision=ReleaseDecision(v.decision),
                    reason=v.reason,
                    created_at=v.created_at,
                )
                for v in votes
            ],
        )
