"""Custom code requests: a researcher's exact source against datasets whose policies accept custom
code, reviewed by a custodian of each dataset's org, and run as a job once every org approved.

The code is a function's source, or a package's deterministic archive
(`custos.computations.custom.code_package`, checked here as the gateways check it). It is stored as
sent, with the SHA-256 digest of its bytes, and never edited: a change is a new request.
A custodian approves by sending an approval signed with their kit's key (`custos.policy.code_approval`)
that binds the digest, function, parameters, output type, datasets and author; the orchestrator checks
it here, and every gateway checks it again before it runs the code. One denial denies the request.
The author never reviews their own request. A job of approved code is held for release review.
Code that could not run (it does not parse, lacks its function, or a package's entrypoint) is refused
at submit (`custos.computations.custom.code_check`), before a custodian is asked to read it.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.computations.base import NextRound
from custos.computations.custom.code_check import check_package_code, check_source
from custos.computations.custom.code_package import verify_code_package
from custos.computations.custom.model import CODE_KEY, CustomModel
from custos.core.clock import Clock
from custos.core.errors import (
    Conflict,
    ContentRefused,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PolicyDenied,
)
from custos.core.identity import Identity
from custos.core.ids import new_id
from custos.core.refs import parse_dataset_ref
from custos.core.states import CODE_REQUEST_MACHINE, CodeRequestState, JobState, SpecState
from custos.core.wire import (
    CUSTOM_MODEL,
    MAX_MOCK_RUN_CHARS,
    CodeDecision,
    CodeOutput,
    CodeRequestCreate,
    CodeRequestDetail,
    CodeRequestPublic,
    CodeReview,
    CodeReviewCreate,
    CodeSource,
    CustomCodeTask,
    JobPublic,
    MockRun,
    Resources,
    SignedCodeApproval,
    mock_run_chars,
)
from custos.orchestrator.services.access import can_see, check_resource
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.services.jobs import JobService
from custos.orchestrator.services.specs import check_user
from custos.orchestrator.services.trust import Trust
from custos.orchestrator.tables import CodeRequest, CodeReviewRecord, ComputeSpec, Gateway, Job
from custos.policy import AssetPolicy, check_access
from custos.policy.checks import granted_columns
from custos.policy.code_approval import ApprovalRefused, approval_for, verify_code_approval
from custos.policy.permissions import Resource

REVIEW = "code.review"
_MODEL = CustomModel()


@dataclass(frozen=True)
class _Submitted:
    """What a request stores of the code it was sent: a package's comes from its manifest."""

    function: str
    output: CodeOutput
    params: dict[str, Any]
    archive: bytes | None


def _submitted(body: CodeRequestCreate) -> _Submitted:
    """The function, output and parameters of `body`, refused with InvalidInput naming the field."""
    if body.package_b64 is None:
        if body.function is None:
            raise InvalidInput("function is required with source: the name of the function to call")
        check_source(body.source, body.function)
        return _Submitted(body.function, body.output or "table", dict(body.params), None)
    archive = body.archive()
    package = verify_code_package(archive)
    check_package_code(package)
    if body.function is not None and body.function != package.entrypoint.split(":")[1]:
        raise ContentRefused(
            f"function is {body.function!r}, but a package runs its manifest's entrypoint "
            f"{package.entrypoint}; leave function out"
        )
    if body.output is not None and body.output != package.output:
        raise ContentRefused(f"output is {body.output}, but the package's manifest declares {package.output}")
    try:
        params = package.manifest.check_params(body.params)
    except InvalidInput as exc:  # the manifest inside the archive decides, which no schema can state
        raise ContentRefused(exc.message) from None
    return _Submitted(package.entrypoint, package.output, params, archive)


def _checked_mock_run(run: MockRun | None, digest: str, refs: list[str]) -> str | None:
    """The mock run to store, as JSON, or ContentRefused: over its bound, of other code, or of a
    dataset the request does not name. What it says is the author's word, and is kept as such."""
    if run is None:
        return None
    size = mock_run_chars(run)
    if size > MAX_MOCK_RUN_CHARS:
        raise ContentRefused(
            f"mock_run is {size} characters of JSON, over the bound of {MAX_MOCK_RUN_CHARS}: "
            "attach fewer rows (Client.mock_run cuts them to fit)"
        )
    if not hmac.compare_digest(run.digest, digest):
        raise ContentRefused(
            f"mock_run is of code with digest {run.digest}, not of this code ({digest}): run it again"
        )
    for output in run.outputs:
        if _ref_text(output.dataset) not in refs:
            raise ContentRefused(
                f"mock_run has a run on {output.dataset}, which the request does not name ({', '.join(refs)})"
            )
    return run.model_dump_json()


def _ref_text(value: str) -> str | None:
    try:
        return str(parse_dataset_ref(value))
    except InvalidInput:
        return None


def _stored_code(row: CodeRequest) -> CodeSource:
    package = None if row.archive is None else base64.b64encode(row.archive).decode("ascii")
    return CodeSource(source=row.source, package_b64=package)


def _is_author(caller: Identity, row: CodeRequest) -> bool:
    return caller.name.casefold() == row.author.casefold()


def _may_review(caller: Identity, row: CodeRequest) -> bool:
    return not _is_author(caller, row) and any(
        can_see(REVIEW, caller, Resource(row.author, org)) for org in row.orgs
    )


class CodeRequestService:
    def __init__(
        self, datasets: DatasetService, jobs: JobService, trust: Trust, clock: Clock, audit: AuditTrail
    ) -> None:
        self._datasets = datasets
        self._jobs = jobs
        self._trust = trust
        self._clock = clock
        self._audit = audit

    def _policy(self, session: Session, ref: str, caller_name: str, caller_org: str) -> AssetPolicy:
        """The dataset's policy, if it accepts custom code from this researcher; else PolicyDenied."""
        row = self._datasets.get_row(session, ref)
        policy = self._datasets.policy(session, row.id)
        if policy is None:
            raise PolicyDenied(f"no policy for dataset {row.id}: access is denied by default")
        if policy.custom_code != "review":
            raise PolicyDenied(
                f"the policy for {row.id} does not accept custom code (custom_code: {policy.custom_code}); "
                "its custodian must set custom_code: review"
            )
        check_access(policy, row.id, caller_name, caller_org, _MODEL.name, _MODEL.version, [])
        return policy

    def submit(self, session: Session, caller: Identity, body: CodeRequestCreate) -> CodeRequestDetail:
        check_user(caller)
        code = _submitted(body)
        refs = list(dict.fromkeys(str(parse_dataset_ref(d)) for d in body.datasets))
        mock_run = _checked_mock_run(body.mock_run, body.computed_digest(), refs)
        orgs: list[str] = []
        for ref in refs:
            self._policy(session, ref, caller.name, caller.org)
            gateway = session.get(Gateway, parse_dataset_ref(ref).gateway)
            assert gateway is not None  # it published the dataset
            if gateway.org not in orgs:
                orgs.append(gateway.org)
        row = CodeRequest(
            id=new_id("code"),
            function=code.function,
            source=body.source,
            digest=body.computed_digest(),
            params=code.params,
            datasets=refs,
            orgs=orgs,
            output=code.output,
            state=CodeRequestState.PENDING,
            author=caller.name,
            org=caller.org,
            role=caller.role.value,
            reason=None,
            created_at=self._clock(),
            decided_at=None,
            archive=code.archive,
            mock_run=mock_run,
        )
        session.add(row)
        session.flush()
        self._audit.append(
            user=caller.name,
            action="code_submitted",
            message=f"{row.id}: {row.function}, digest {row.digest}, on {', '.join(refs)}",
        )
        return self._detail(session, row)

    def list_visible(self, session: Session, caller: Identity) -> list[CodeRequestPublic]:
        """Your own requests and those you may review, oldest first."""
        rows = session.execute(select(CodeRequest).order_by(CodeRequest.created_at)).scalars()
        return [self._public(session, r) for r in rows if self._visible(caller, r)]

    def _visible(self, caller: Identity, row: CodeRequest) -> bool:
        return can_see("code.view", caller, Resource(row.author, row.org)) or _may_review(caller, row)

    def _get(self, session: Session, caller: Identity, request_id: str, *, lock: bool = False) -> CodeRequest:
        row = session.get(CodeRequest, request_id, with_for_update=lock)
        if row is None or not self._visible(caller, row):
            raise NotFound(f"unknown code request {request_id}")
        return row

    def get(self, session: Session, caller: Identity, request_id: str) -> CodeRequestDetail:
        return self._detail(session, self._get(session, caller, request_id))

    def review(
        self,
        session: Session,
        caller: Identity,
        request_id: str,
        decision: CodeDecision,
        body: CodeReviewCreate,
    ) -> CodeRequestDetail:
        row = self._get(session, caller, request_id, lock=True)
        if _is_author(caller, row):
            raise PermissionDenied(
                f"{caller.name} wrote code request {row.id}: an author never reviews their own"
            )
        org = next((o for o in row.orgs if o.casefold() == caller.org.casefold()), None)
        if org is None or not can_see(REVIEW, caller, Resource(row.author, org)):
            raise PermissionDenied(
                f"{caller.name} may not review code request {row.id}: its reviewers are the org admins "
                f"of {', '.join(row.orgs)}"
            )
        if row.state != CodeRequestState.PENDING:
            raise Conflict(f"code request {row.id} is {row.state}; it takes no more decisions")
        earlier = session.execute(
            select(CodeReviewRecord).where(CodeReviewRecord.request_id == row.id, CodeReviewRecord.org == org)
        ).scalar_one_or_none()
        if earlier is not None:
            raise Conflict(f"{earlier.reviewer} already decided {earlier.decision} for {org} on {row.id}")
        reason = body.reason.strip()
        now = self._clock()
        approval = None
        if decision == "deny":
            if not reason:
                raise InvalidInput("reason is required to deny a code request: tell the researcher why")
        else:
            approval = self._check_approval(session, caller, row, body.approval)
        session.add(
            CodeReviewRecord(
                request_id=row.id,
                reviewer=caller.name,
                org=org,
                decision=decision,
                reason=reason,
                approval_json=approval.model_dump(mode="json") if approval is not None else None,
                created_at=now,
            )
        )
        session.flush()
        self._decide(session, caller, row, decision, reason, now)
        return self._detail(session, row)

    def _check_approval(
        self, session: Session, caller: Identity, row: CodeRequest, signed: SignedCodeApproval | None
    ) -> SignedCodeApproval:
        if signed is None:
            raise InvalidInput(
                "approval is required: sign the approval with your kit (`custos code approve` does)"
            )
        try:
            signer = verify_code_approval(signed, lambda cert: self._trust.verify(session, cert))
        except ApprovalRefused as exc:
            raise PermissionDenied(exc.message) from exc
        if signer.name.casefold() != caller.name.casefold():
            raise PermissionDenied(f"the approval is signed by {signer.name}, not by {caller.name}")
        expected = approval_for(self._detail(session, row), now=signed.approval.approved_at)
        if signed.approval != expected:
            raise Conflict(
                f"the approval does not match code request {row.id} as stored (digest {row.digest}); "
                "review the request again"
            )
        return signed

    def _decide(
        self,
        session: Session,
        caller: Identity,
        row: CodeRequest,
        decision: CodeDecision,
        reason: str,
        now: datetime,
    ) -> None:
        if decision == "deny":
            target = CodeRequestState.DENIED
            row.reason = f"denied by {caller.name}: {reason}"
        else:
            approved = {r.org for r in self._reviews(session, row.id) if r.decision == "approve"}
            self._audit.append(
                user=caller.name,
                action="code_approved",
                message=f"{row.id} for {caller.org}, digest {row.digest}",
            )
            if not set(row.orgs) <= approved:
                return
            target = CodeRequestState.APPROVED
        CODE_REQUEST_MACHINE.move(row, target)
        row.decided_at = now
        if target is CodeRequestState.DENIED:
            self._audit.append(user=caller.name, action="code_denied", message=f"{row.id}: {reason}")

    def run(self, session: Session, caller: Identity, request_id: str) -> JobPublic:
        """Start a job of approved code on its datasets, refused unless the code is exactly what every
        org approved (the gateways check the same again)."""
        check_user(caller)
        row = self._get(session, caller, request_id)
        check_resource(
            "code.run", caller, Resource(row.author, row.org), f"unknown code request {request_id}"
        )
        if row.state == CodeRequestState.PENDING:
            waiting = sorted(set(row.orgs) - {r.org for r in self._reviews(session, row.id)})
            raise Conflict(
                f"code request {row.id} is pending: a custodian of {', '.join(waiting)} must approve it first"
            )
        if row.state == CodeRequestState.DENIED:
            raise Conflict(f"code request {row.id} was {row.reason}")
        approvals = self._approvals(session, row.id)
        stored = _stored_code(row)
        digest = stored.computed_digest()
        if not hmac.compare_digest(digest, row.digest) or any(
            not hmac.compare_digest(a.approval.digest, digest) for a in approvals
        ):
            raise Conflict(
                f"the code of request {row.id} has digest {digest}, not the digest its custodians approved: "
                "changed code needs a new request"
            )
        columns: set[str] = set()
        for ref in row.datasets:
            policy = self._policy(session, ref, row.author, row.org)
            columns |= granted_columns(policy, row.author, row.org, _MODEL.name, _MODEL.version)
        now = self._clock()
        spec = ComputeSpec(
            id=new_id("spec"),
            name=f"code request {row.id}",
            model=CUSTOM_MODEL,
            datasets=list(row.datasets),
            columns=sorted(columns),
            resources=Resources().model_dump(mode="json"),
            # The custodians' signed approvals stand in for activation: every gateway checks them.
            state=SpecState.ACTIVE,
            reason=None,
            owner=row.author,
            org=row.org,
            owner_role=row.role,
            created_at=now,
            updated_at=now,
        )
        session.add(spec)
        job = Job(
            id=new_id("job"),
            spec_id=spec.id,
            model=CUSTOM_MODEL,
            params=dict(row.params),
            state=JobState.QUEUED,
            round=0,
            model_state={},
            min_count=1,
            reason=None,
            submitter=row.author,
            org=row.org,
            role=row.role,
            created_at=now,
            finished_at=None,
        )
        code = CustomCodeTask(
            request_id=row.id,
            function=row.function,
            source=stored.source,
            package_b64=stored.package_b64,
            digest=row.digest,
            output=row.output,
            approvals=approvals,
        )
        self._audit.append(
            user=caller.name, action="code_run", job=job.id, message=f"{row.id}, digest {digest}"
        )
        first = NextRound(round_input={CODE_KEY: code.model_dump(mode="json")}, state={})
        return self._jobs.start(session, job, spec, first)

    def _reviews(self, session: Session, request_id: str) -> list[CodeReviewRecord]:
        return list(
            session.execute(
                select(CodeReviewRecord)
                .where(CodeReviewRecord.request_id == request_id)
                .order_by(CodeReviewRecord.id)
            ).scalars()
        )

    def _approvals(self, session: Session, request_id: str) -> list[SignedCodeApproval]:
        return [
            SignedCodeApproval.model_validate(r.approval_json)
            for r in self._reviews(session, request_id)
            if r.decision == "approve" and r.approval_json is not None
        ]

    def _public(self, session: Session, row: CodeRequest) -> CodeRequestPublic:
        return CodeRequestPublic(
            id=row.id,
            state=row.state,
            kind="function" if row.source else "package",
            function=row.function,
            digest=row.digest,
            datasets=list(row.datasets),
            params=dict(row.params),
            output=row.output,
            author=row.author,
            org=row.org,
            orgs=list(row.orgs),
            reviews=[
                CodeReview(
                    reviewer=r.reviewer,
                    org=r.org,
                    decision=r.decision,
                    reason=r.reason,
                    created_at=r.created_at,
                )
                for r in self._reviews(session, row.id)
            ],
            reason=row.reason,
            created_at=row.created_at,
            decided_at=row.decided_at,
        )

    def _detail(self, session: Session, row: CodeRequest) -> CodeRequestDetail:
        return CodeRequestDetail(
            **self._public(session, row).model_dump(),
            source=row.source,
            package_b64=_stored_code(row).package_b64,
            approvals=self._approvals(session, row.id),
            mock_run=None if row.mock_run is None else MockRun.model_validate_json(row.mock_run),
        )
