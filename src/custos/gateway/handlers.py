"""What the gateway does with one task. It re-checks everything, whatever the orchestrator decided:
first the site's authorization (may this submitter, in this role, do this here?), then its own policy
copy. Then it runs the round in the job's sandboxed runtime (see `runtimes`), whose DAL serves only
the columns this check granted, and filters the result before it leaves.

`handle_task` never raises: every failure becomes an outcome with a reason the researcher may see.

Reviewed custom code (model `custom`) is checked further (`check_custom_task`): the site must give the
submitter the `custom_code` right, the dataset's policy must say `custom_code: review`, and the task
must carry an approval, signed by a custodian of this site's org, of exactly the code it carries (the
gateway computes the digest itself). A package's archive is then checked in memory, as the registry
checks a model's, and is never unpacked: the sandbox imports it from memory. The code's output must
be of its declared type and within its caps, and its failures leave with data values redacted; the
full log stays in `code-logs/`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from custos.audit import AuditTrail
from custos.computations.base import FederatedModel, policy_privacy
from custos.computations.custom.code_package import CodePackage, manifest_caps, verify_code_package
from custos.computations.custom.disclosure import DEFAULT_CAPS, check_output, redact_error, schema_vocabulary
from custos.computations.custom.model import CODE_KEY, CustomModel
from custos.computations.fedavg.dp import DpTrainingModel
from custos.computations.package.model import PACKAGE_KEY, PackageModel, PackageRunner
from custos.computations.registry import get_model, is_builtin
from custos.core.digest import json_digest
from custos.core.errors import CustosError, PolicyDenied, SandboxError
from custos.core.refs import parse_model_ref
from custos.core.wire import CustomCodeTask, Resources, TaskAssignment, TaskKind
from custos.gateway.budget import BUDGET_FILE, GatewayBudget
from custos.gateway.code_logs import failed_task_log, write_code_log
from custos.gateway.dal import DatasetGrant
from custos.gateway.model_cache import ArchiveSource, ModelCache
from custos.gateway.policies import PolicyKeeper, is_older
from custos.gateway.runtimes import RuntimeKey, RuntimePool
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset, get_dataset
from custos.policy import AssetPolicy, Right, SiteAuthorization, check_access, check_authorization
from custos.policy.checks import granted_columns
from custos.policy.code_approval import check_code_approved
from custos.policy.signing import CertificateCheck, PolicyRefused
from custos.privacy.filters import FilterContext, SitePrivacy, chain_for
from custos.privacy.plan import DpPlan
from custos.sandbox.limits import SandboxLimits
from custos.sandbox.runner import Runner

log = logging.getLogger("custos.gateway")


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = None


# The right of the site's authorization that each kind of task needs.
TASK_RIGHTS: dict[TaskKind, Right] = {
    TaskKind.COMPUTE: Right.SUBMIT_JOB,
    TaskKind.PREPARE: Right.ACTIVATE_SPEC,
}


def check_task(
    task: TaskAssignment,
    dataset: SiteDataset,
    gateway: str,
    *,
    site_org: str,
    authorization: SiteAuthorization,
    policy: AssetPolicy | None,
    model: FederatedModel | None = None,
) -> tuple[FederatedModel, list[str]]:
    """Raise unless this site's authorization and its verified `policy` allow the task. Returns the
    model (a built-in, or the published package given as `model`) and the columns it reads."""
    who = task.submitter
    try:
        check_authorization(
            authorization, site_org=site_org, user=who.name, org=who.org, role=who.role,
            right=TASK_RIGHTS[task.kind],
        )  # fmt: skip
    except PolicyDenied as exc:
        raise PolicyDenied(f"site {gateway} refuses {who.name} of {who.org}: {exc.message}") from None
    ref = parse_model_ref(task.model)
    model = model or get_model(ref.name, ref.version)
    columns = list(task.columns)
    if task.kind is TaskKind.COMPUTE:
        model.validate_params(task.params, dataset.schema, task.columns)
        columns = model.columns_used(task.params)
        outside = sorted(set(columns) - set(task.columns))
        if outside:
            raise PolicyDenied(
                f"the job reads column(s) {', '.join(outside)} that its compute spec does not name"
            )
    else:
        for column in columns:
            dataset.schema.column(column)
    check_access(policy, f"{gateway}/{task.dataset}", who.name, who.org, ref.name, ref.version, columns)
    return model, columns


def check_custom_task(
    task: TaskAssignment,
    gateway: str,
    *,
    site_org: str,
    authorization: SiteAuthorization,
    policy: AssetPolicy | None,
    check_certificate: CertificateCheck,
) -> tuple[CustomCodeTask, list[str], CodePackage | None]:
    """Raise unless this site lets the task's submitter run its custom code here: the `custom_code`
    right, a policy with `custom_code: review` and a grant to model `custom`, and a verified approval
    of exactly this code by a custodian of this site's org. Returns the code, the granted columns and,
    for a package, the verified package."""
    who = task.submitter
    ref = f"{gateway}/{task.dataset}"
    for right in (TASK_RIGHTS[task.kind], Right.CUSTOM_CODE):
        try:
            check_authorization(
                authorization, site_org=site_org, user=who.name, org=who.org, role=who.role, right=right
            )
        except PolicyDenied as exc:
            raise PolicyDenied(f"site {gateway} refuses {who.name} of {who.org}: {exc.message}") from None
    if task.kind is not TaskKind.COMPUTE:
        raise PolicyDenied("custom code runs only in a job's compute task")
    if policy is None:
        raise PolicyDenied(f"no policy for dataset {ref}: access is denied by default")
    if policy.custom_code != "review":
        raise PolicyDenied(
            f"the policy for {ref} does not accept custom code (custom_code: {policy.custom_code})"
        )
    try:
        code = CustomCodeTask.model_validate(task.round_input.get(CODE_KEY))
    except ValueError:
        raise PolicyDenied("the task carries no well-formed custom code and approvals") from None
    check_code_approved(
        code, dataset=ref, site_org=site_org, author=who.name, author_org=who.org, params=task.params,
        check_certificate=check_certificate,
    )  # fmt: skip
    package = check_code_package(code) if code.package_b64 is not None else None
    model = CustomModel()
    check_access(policy, ref, who.name, who.org, model.name, model.version, [])
    columns = sorted(granted_columns(policy, who.name, who.org, model.name, model.version))
    return code, columns, package


def check_code_package(code: CustomCodeTask) -> CodePackage:
    """Raise unless the approved archive passes the registry's checks in memory (no `..`, absolute
    path, link or zip bomb; a manifest), and its manifest names the task's entrypoint and output."""
    package = verify_code_package(code.archive(), code.digest)
    if package.entrypoint != code.function or package.output != code.output:
        raise PolicyDenied(
            f"code request {code.request_id} runs {code.function} ({code.output}), but its package's "
            f"manifest names {package.entrypoint} ({package.output})"
        )
    return package


class TaskHandler:
    def __init__(
        self,
        gateway: str,
        site: dict[str, SiteDataset],
        runner: Runner,
        settings: GatewaySettings,
        audit: AuditTrail,
        *,
        org: str,
        authorization: SiteAuthorization,
        policies: PolicyKeeper,
        budget: GatewayBudget | None = None,
        check_certificate: CertificateCheck | None = None,
        site_privacy: SitePrivacy | None = None,
        models: ModelCache | None = None,
        archives: ArchiveSource | None = None,
    ) -> None:
        # Published packages: verified and cached by digest (`models`), fetched from `archives`.
        self._models, self._archives = models, archives
        # The site's privacy.yaml: scopes and their task filters (custos.privacy.filters).
        self._site_privacy = site_privacy or SitePrivacy()
        # Approvals of custom code are verified as the policies are: against this site's trust.
        self._check_certificate = check_certificate or policies.check_certificate
        self._budget = budget or GatewayBudget(settings.state_dir / BUDGET_FILE)
        self._audit = audit
        self._policies = policies
        self._gateway = gateway
        self._org = org
        self._authorization = authorization
        self._site = site
        self._runner = runner
        self._settings = settings
        self._runtimes = RuntimePool(
            runner,
            max_result_bytes=settings.max_result_bytes,
            # The spare fits a job that asks for the default resources, the usual case.
            spare_limits=SandboxLimits.from_resources(Resources(), settings.sandbox_caps)
            if settings.warm_spare
            else None,
            idle_s=settings.runtime_idle_s,
        )

    def handle_task(self, task: TaskAssignment) -> Outcome:
        who = task.submitter.name
        event = self._audit.append(
            user=who, action="task_received", job=task.job_id, peer=task.audit_event,
            message=f"{task.task_id} ({task.kind}, round {task.round}) {task.model} on {task.dataset}",
        )  # fmt: skip
        outcome = self._handle(task)
        action = "task_done" if outcome.status == "done" else "task_failed"
        self._audit.append(
            user=who, action=action, job=task.job_id, peer=event, message=outcome.error or task.task_id
        )
        return outcome

    def _handle(self, task: TaskAssignment) -> Outcome:
        try:
            dataset = get_dataset(self._site, task.dataset)
            policy = self._policy_for(task)
            if parse_model_ref(task.model).name == CustomModel.name:
                return self._custom(task, dataset, policy)
            if not is_builtin(task.model):
                return self._package(task, dataset, policy)
            model, columns = check_task(
                task,
                dataset,
                self._gateway,
                site_org=self._org,
                authorization=self._authorization,
                policy=policy,
            )
            if task.kind is TaskKind.PREPARE:
                return Outcome("done", result={"validated": True})
            assert policy is not None  # check_task refused otherwise
            return self._compute(task, dataset, policy, model, columns)
        except CustosError as exc:
            log.info("task %s refused or failed: %s", task.task_id, exc)
            return Outcome("failed", error=str(exc))
        except Exception as exc:  # one bad task must never stop the agent
            log.exception("task %s failed unexpectedly", task.task_id)
            return Outcome("failed", error=f"internal error at the gateway ({type(exc).__name__})")

    def _custom(self, task: TaskAssignment, dataset: SiteDataset, policy: AssetPolicy | None) -> Outcome:
        code, columns, package = check_custom_task(
            task, self._gateway, site_org=self._org, authorization=self._authorization, policy=policy,
            check_certificate=self._check_certificate,
        )  # fmt: skip
        assert policy is not None  # check_custom_task refused otherwise
        caps = DEFAULT_CAPS
        if package is not None:  # its manifest's columns and caps apply here
            package.check_columns(dataset.schema, f"{self._gateway}/{task.dataset}")
            caps = package.output_caps(caps)
        self._audit.append(
            user=task.submitter.name, action="code_approved_checked", job=task.job_id,
            message=f"{task.dataset}: code request {code.request_id}, digest {code.digest}",
        )  # fmt: skip
        try:
            outcome = self._compute(task, dataset, policy, CustomModel(), columns)
        except SandboxError as exc:  # the sandbox's own last words may quote rows
            return self._custom_failure(task, dataset, {"type": "SandboxError", "message": str(exc)})
        if outcome.status == "failed" or outcome.result is None:
            return outcome
        check_output(outcome.result, code.output, caps)
        return outcome

    def _package(self, task: TaskAssignment, dataset: SiteDataset, policy: AssetPolicy | None) -> Outcome:
        """A published package: fetched from the orchestrator, its digest, signature and structure
        verified and cached by digest (at the spec's prepare task, and again before every run), then
        run in the sandbox by `package@1.0.0`; its output checked against the manifest's."""
        if self._models is None or self._archives is None:
            raise PolicyDenied(f"site {self._gateway} runs no published packages")
        cached = self._models.fetch(self._archives, task.model)
        named = task.round_input.get(PACKAGE_KEY, {}).get("digest")
        if named is not None and named != cached.digest:
            raise PolicyDenied(
                f"the orchestrator runs {task.model} as sha256:{named}; "
                f"this site verified sha256:{cached.digest}"
            )
        model = PackageModel(cached.manifest, cached.digest)
        _, columns = check_task(
            task, dataset, self._gateway, site_org=self._org, authorization=self._authorization,
            policy=policy, model=model,
        )  # fmt: skip
        self._audit.append(
            user=task.submitter.name, action="package_verified", job=task.job_id,
            message=f"{task.model} sha256:{cached.digest}, signed by {cached.signer.name}",
        )  # fmt: skip
        if task.kind is TaskKind.PREPARE:
            return Outcome("done", result={"validated": True})
        assert policy is not None  # check_task refused otherwise
        package = {"archive": self._models.archive(cached.digest), "entrypoint": model.manifest.entrypoint}
        run = task.model_copy(
            update={
                "model": f"{PackageRunner.name}@{PackageRunner.version}",
                "params": model.manifest.check_params(dict(task.params)),  # with the defaults
                "round_input": {PACKAGE_KEY: package | {"output": model.output}},
            }
        )
        outcome = self._compute(run, dataset, policy, model, columns)
        if outcome.status == "done" and outcome.result is not None:
            check_output(outcome.result, model.output, manifest_caps(model.manifest, DEFAULT_CAPS))
        return outcome

    def _custom_failure(self, task: TaskAssignment, dataset: SiteDataset, reply: dict[str, Any]) -> Outcome:
        """Keep the full error at the gateway (bounded, owner-only, by job; see `code_logs`); send only
        its type and a redacted message. A custodian may release the full log later."""
        path = write_code_log(self._settings.state_dir, failed_task_log(task, self._gateway, reply))
        self._audit.append(
            user=task.submitter.name, action="code_failed", job=task.job_id,
            message=f"{task.task_id}: full log kept in {path.relative_to(self._settings.state_dir)}",
        )  # fmt: skip
        kind, message = str(reply.get("type", "Exception")), str(reply.get("message", ""))
        return Outcome("failed", error=redact_error(kind, message, schema_vocabulary(dataset.schema)))

    def _policy_for(self, task: TaskAssignment) -> AssetPolicy | None:
        """The policy in force for the task's dataset, after adopting a newer one the task carries. A
        relayed policy that does not verify refuses the task; an older one is ignored."""
        if task.policy is not None:
            try:
                self._policies.offer(task.dataset, task.policy)
            except PolicyRefused as exc:
                if not is_older(task.policy, self._policies.signed(task.dataset)):
                    self._audit.append(
                        user=task.submitter.name,
                        action="policy_refused",
                        job=task.job_id,
                        message=exc.message,
                    )
                    raise
                log.info("task %s carries an older policy than the one in force; using ours", task.task_id)
        return self._policies.current(task.dataset)

    def _compute(
        self,
        task: TaskAssignment,
        dataset: SiteDataset,
        policy: AssetPolicy,
        model: FederatedModel,
        columns: list[str],
    ) -> Outcome:
        assert task.job_id is not None  # check_task refused otherwise
        controls = policy_privacy(policy)
        # Only this gateway's policy may ask the sandbox for a DP release, never the orchestrator.
        round_input = {k: v for k, v in task.round_input.items() if k != "dp"}
        training: DpPlan | None = None
        if controls.training is not None and isinstance(model, DpTrainingModel):
            training = model.plan_training_dp(task.params, controls.training, dataset.row_count)
        chain = chain_for(self._site_privacy, task.params, require_dp=training is not None)
        context = FilterContext(model.name, task.params, round_input, controls, chain.scope, training)
        round_input = chain.filter_data(round_input, context)
        context.round_input = round_input
        reservation = None
        if training is not None and controls.budget is not None:
            # The whole job's projected epsilon, reserved before its first round; later rounds reuse it.
            reservation = self._budget.reserve(task, dataset, controls.budget, training.cost, whole_job=True)
            self._audit.append(
                user=task.submitter.name, action="budget_reserved", job=task.job_id,
                message=f"{task.dataset}: epsilon={training.cost.epsilon:g} delta={training.cost.delta:g} "
                f"for the job's {training.queries} DP training rounds, reservation {reservation.id}",
            )  # fmt: skip
            if training.settings:
                round_input["dp"] = training.settings
        elif controls.dp is not None and controls.budget is not None:
            plan = model.plan_dp(task.params, dataset.schema, controls.dp)
            reservation = self._budget.reserve(task, dataset, controls.budget, plan.cost)
            self._audit.append(
                user=task.submitter.name, action="budget_reserved", job=task.job_id,
                message=f"{task.dataset}: epsilon={plan.cost.epsilon:g} delta={plan.cost.delta:g} "
                f"({plan.queries} queries), reservation {reservation.id}",
            )  # fmt: skip
            round_input["dp"] = plan.settings
        # Only now, with the budget reserved, does the sandbox get its runtime and DAL grant: a job
        # the ledger refuses never boots one.
        key = RuntimeKey(task.job_id, task.dataset, json_digest(task.params), frozenset(columns))
        grants = {task.dataset: DatasetGrant(source=dataset.source, columns=frozenset(columns))}
        limits = SandboxLimits.from_resources(task.resources, self._settings.sandbox_caps)
        try:
            runtime = self._runtimes.get(key, limits, grants, self._settings.state_dir / "access.log")
            self._audit.append(
                user=task.submitter.name, action="dal_grant", job=task.job_id,
                message=f"{task.dataset}: {', '.join(sorted(columns))}",
            )  # fmt: skip
            request = {
                "model": task.model, "dataset": task.dataset, "params": task.params,
                "round_input": round_input, "dal_socket": runtime.dal_socket, "dal_token": runtime.token,
            }  # fmt: skip
            reply = runtime.compute(request)
        except CustosError:
            self._runtimes.discard(key)
            raise
        finally:
            # A training reservation stays open (and spent) until the job's last round.
            if reservation is not None and (training is None or round_input.get("phase") == "evaluate"):
                self._budget.commit(reservation)
        if not reply.get("ok") or not isinstance(reply.get("result"), dict):
            self._runtimes.discard(key)
            if isinstance(model, CustomModel | PackageRunner):  # code not the custodian's: redacted
                return self._custom_failure(task, dataset, reply)
            return Outcome("failed", error=f"{reply.get('type', 'Error')}: {reply.get('message', '')}"[:2000])
        result = chain.filter_result(reply["result"], context)
        filtered = model.filter_site_result(task.params, result, controls)
        if reservation is not None and controls.budget is not None:
            filtered["budget"] = self._budget.standing(task, dataset, controls.budget)
        return Outcome("done", result=filtered)

    def reap(self) -> None:
        """Close job runtimes that have been idle too long."""
        self._runtimes.reap()

    def close(self) -> None:
        self._runtimes.close_all()
