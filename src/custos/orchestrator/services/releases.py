"""Output release review: a finished job's result held until the reviewers of its datasets' orgs vote.

Release is per custodian: every org whose dataset's policy asks for review has its own part, and the
strictest `release` of that org's datasets decides how many distinct approvals the part needs (`one`
or `two`). A reviewer votes for their own org's part only: the users who may perform
`release.review` on that org. The job's author never reviews, and a person votes once. One `return`
or `reject` from any of the orgs ends the review and fails the job with the reason; the result is
released, and the job succeeds, only when every org's part is approved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_never

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.core.clock import Clock
from custos.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from custos.core.identity import Identity
from custos.core.ids import new_id
from custos.core.refs import parse_dataset_ref
from custos.core.states import RELEASE_MACHINE, JobState, ReleaseState
from custos.core.wire import (
    OutputFlag,
    ReleaseDecision,
    ReleaseDetail,
    ReleasePart,
    ReleasePartState,
    ReleasePublic,
    ReleaseVote,
    ReleaseVoteCreate,
)
from custos.orchestrator.services.access import can_see, check_resource
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.services.tasks import finish_job
from custos.orchestrator.tables import (
    ComputeSpec,
    Gateway,
    Job,
    Release,
    ReleasePartRecord,
    ReleaseReview,
    Result,
)
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
    Each org whose datasets ask for review gets a part, needing the strictest of those policies'
    number of reviewers; `minimum` reviewers are needed whatever the policies say (custom code's
    outputs: one, so every org reviews its part).

    A dataset whose policy was withdrawn while the job ran holds the result for two reviewers: no
    policy never means fewer checks."""
    needed_by_org: dict[str, int] = {}
    for ref in spec.datasets:
        parsed = parse_dataset_ref(ref)
        policy = datasets.policy(session, str(parsed))
        needed = REVIEWERS_NEEDED[policy.release] if policy is not None else REVIEWERS_NEEDED["two"]
        needed = max(needed, minimum)
        if needed:
            org = org_of(session, ref)
            needed_by_org[org] = max(needed_by_org.get(org, 0), needed)
    if not needed_by_org:
        return None
    release = Release(
        id=new_id("rel"),
        job_id=job.id,
        state=ReleaseState.HELD,
        required=sum(needed_by_org.values()),
        orgs=list(needed_by_org),
        reason=None,
        created_at=now,
        updated_at=now,
    )
    session.add(release)
    session.flush()  # the parts refer to it
    session.add_all(
        ReleasePartRecord(release_id=release.id, org=org, required=needed)
        for org, needed in needed_by_org.items()
    )
    return release


def held_message(session: Session, job_id: str) -> str:
    """Why a job's result cannot be downloaded yet, with the review's progress."""
    release = session.execute(select(Release).where(Release.job_id == job_id)).scalar_one_or_none()
    job = session.get(Job, job_id)
    if release is None or job is None:
        return f"the result of job {job_id} is held for release review"
    return (
        f"the result of job {job_id} is held for release review ({_progress(_parts(session, release, job))})"
    )


def org_of(session: Session, ref: str) -> str:
    gateway = session.get(Gateway, parse_dataset_ref(ref).gateway)
    assert gateway is not None  # it signed in to run the job's tasks
    return gateway.org


def _votes(session: Session, release_id: str) -> list[ReleaseReview]:
    query = select(ReleaseReview).where(ReleaseReview.release_id == release_id).order_by(ReleaseReview.id)
    return list(session.execute(query).scalars())


_ENDED_BY: dict[str, ReleasePartState] = {
    ReleaseDecision.RETURN.value: "returned",
    ReleaseDecision.REJECT.value: "rejected",
}


def _parts(session: Session, release: Release, job: Job) -> list[ReleasePart]:
    """Each org's part of the review, in the release's order of orgs: what its reviewers decided."""
    spec = session.get(ComputeSpec, job.spec_id)
    assert spec is not None
    datasets: dict[str, list[str]] = {}
    for ref in spec.datasets:
        datasets.setdefault(org_of(session, ref).casefold(), []).append(ref)
    needed = {
        r.org: r.required
        for r in session.execute(
            select(ReleasePartRecord).where(ReleasePartRecord.release_id == release.id)
        ).scalars()
    }
    votes = _votes(session, release.id)
    parts = []
    for org in release.orgs:
        mine = [v for v in votes if v.org.casefold() == org.casefold()]
        approvers = [v.reviewer for v in mine if v.decision == ReleaseDecision.APPROVE.value]
        required = needed[org]
        ended = next((_ENDED_BY[v.decision] for v in mine if v.decision in _ENDED_BY), None)
        state: ReleasePartState = ended or ("approved" if len(approvers) >= required else "pending")
        parts.append(
            ReleasePart(
                org=org,
                datasets=datasets.get(org.casefold(), []),
                required=required,
                approvals=min(len(approvers), required),
                reviewers=approvers,
                state=state,
            )
        )
    return parts


def _progress(parts: list[ReleasePart]) -> str:
    """`1 of 2 reviews; waiting for hospital-a`: the approvals that count, and who has not approved."""
    approvals, required = sum(p.approvals for p in parts), sum(p.required for p in parts)
    waiting = [p.org for p in parts if p.state == "pending"]
    progress = f"{approvals} of {required} reviews"
    if len(parts) > 1 and waiting:
        progress += f"; waiting for {', '.join(waiting)}"
    return progress


def _is_author(caller: Identity, job: Job) -> bool:
    return caller.name.casefold() == job.submitter.casefold()


def _may_review(caller: Identity, release: Release, job: Job) -> bool:
    return not _is_author(caller, job) and any(
        can_see(OPERATION, caller, Resource(job.submitter, org)) for org in release.orgs
    )


def _part_of(caller: Identity, release: Release, job: Job) -> str:
    """The org whose part `caller` votes on: their own, when it is one of the release's and they
    review for it. A reviewer never votes on another org's part."""
    org = next((o for o in release.orgs if o.casefold() == caller.org.casefold()), None)
    if org is None or not can_see(OPERATION, caller, Resource(job.submitter, org)):
        raise PermissionDenied(
            f"{caller.name} may not vote on release {release.id}: each org approves its own part, "
            f"and its reviewers are the org admins of {', '.join(release.orgs)}"
        )
    return org


def own_parts(
    session: Session, caller: Identity, release: Release, job: Job, result: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The held result as `caller` reviews it: a result of one output per site (custom code's, a
    package's) keeps only the sites of the orgs `caller` reviews for; the others' outputs are their own
    reviewers' to see. A pooled result (a model's aggregates) is every org's, and shown whole."""
    sites = result.get("sites")
    if not isinstance(sites, dict):
        return result, []
    mine = {o.casefold() for o in release.orgs if can_see(OPERATION, caller, Resource(job.submitter, o))}
    withheld = sorted(ref for ref in sites if org_of(session, ref).casefold() not in mine)
    shown = {ref: output for ref, output in sites.items() if ref not in withheld}
    return result | {"sites": shown}, withheld


_NO_CHECK = "this site's output carries no automatic check: its reviewers read it whole"
_BAD_FLAG = "a flag of this site's automatic check could not be read"


def output_flags(result: dict[str, Any]) -> list[OutputFlag]:
    """What the gateways' automatic checks found in the site outputs of `result` (custom code's, a
    package's: `{"sites": {gateway/dataset: output}}`), each with its dataset. An output that carries
    no check (a gateway that did not run one) is flagged unchecked as a whole."""
    sites = result.get("sites")
    if not isinstance(sites, dict):
        return []
    flags = []
    for ref, output in sorted(sites.items()):
        found = output.get("flags") if isinstance(output, dict) else None
        if not isinstance(found, list):
            found = [
                {"rule": "unchecked", "value_class": "table", "action": "unchecked", "reason": _NO_CHECK}
            ]
        for raw in found:
            try:
                flags.append(OutputFlag.model_validate({**raw, "dataset": ref}))
            except (ValidationError, TypeError):
                flags.append(
                    OutputFlag(
                        dataset=ref,
                        rule="unchecked",
                        value_class="table",
                        action="unchecked",
                        reason=_BAD_FLAG,
                    )
                )
    return flags


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
        """The release as `caller` reviews it, held result included: the view is audited."""
        release, job = self.reviewable(session, caller, release_id)
        detail = self._detail(session, caller, release, job)
        sites = detail.result.get("sites")
        shown = ", ".join(sorted(sites)) if isinstance(sites, dict) else "the pooled result"
        self._audit.append(
            user=caller.name,
            action="release_viewed",
            job=job.id,
            message=f"{release.id}: {shown or 'nothing'}",
        )
        return detail

    def vote(
        self,
        session: Session,
        caller: Identity,
        release_id: str,
        decision: ReleaseDecision,
        body: ReleaseVoteCreate,
    ) -> ReleaseDetail:
        release, job = self.reviewable(session, caller, release_id, lock=True)
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
        org = _part_of(caller, release, job)
        parts = _parts(session, release, job)
        part = next(p for p in parts if p.org == org)
        if earlier is not None:
            raise Conflict(
                f"{caller.name} already voted {earlier.decision} on release {release.id}; "
                f"{'two distinct reviewers are' if part.required == 2 else 'another reviewer is'} needed"
            )
        if decision is ReleaseDecision.APPROVE and part.state == "approved":
            waiting = ", ".join(p.org for p in parts if p.state == "pending")
            raise Conflict(
                f"{org} has approved its part of release {release.id} "
                f"({part.approvals} of {part.required}); the release waits for {waiting}"
            )
        now = self._clock()
        session.add(
            ReleaseReview(
                release_id=release.id,
                reviewer=caller.name,
                org=org,
                decision=decision.value,
                reason=reason,
                created_at=now,
            )
        )
        session.flush()
        self._decide(session, caller, org, release, job, decision, reason, now)
        return self._detail(session, caller, release, job)

    def _decide(
        self,
        session: Session,
        caller: Identity,
        org: str,
        release: Release,
        job: Job,
        decision: ReleaseDecision,
        reason: str,
        now: datetime,
    ) -> None:
        current = release.state
        match decision:
            case ReleaseDecision.APPROVE:
                parts = _parts(session, release, job)
                part = next(p for p in parts if p.org == org)
                self._audit.append(
                    user=caller.name,
                    action="release_approved",
                    job=job.id,
                    message=f"{release.id} for {org}: {part.approvals} of {part.required} "
                    f"({_progress(parts)})" + (f": {reason}" if reason else ""),
                )
                if any(p.state != "approved" for p in parts):
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

    def reviewable(
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
        parts = _parts(session, release, job)
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
            approvals=sum(p.approvals for p in parts),
            reason=release.reason,
            created_at=release.created_at,
            updated_at=release.updated_at,
            parts=parts,
        )

    def _detail(self, session: Session, caller: Identity, release: Release, job: Job) -> ReleaseDetail:
        spec = session.get(ComputeSpec, job.spec_id)
        row = session.get(Result, job.id)
        assert spec is not None and row is not None
        result, withheld = own_parts(session, caller, release, job, dict(row.result))
        votes = _votes(session, release.id)
        return ReleaseDetail(
            **self._public(session, release, job).model_dump(),
            spec_id=spec.id,
            params=dict(job.params),
            columns=list(spec.columns),
            result=result,
            withheld=withheld,
            flags=output_flags(result),
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
