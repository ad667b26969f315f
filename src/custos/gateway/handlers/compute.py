"""The steps every compute task takes once its kind's checks passed, whatever the kind: the site's
data filters, the reservation of its privacy budget, the job's sandboxed runtime and DAL grant, the
result filters, and the check of an output that is not the custodian's code.

The budget is reserved before the sandbox gets a runtime and a DAL grant: a job the ledger refuses
boots nothing. The reservation is committed after the run by the agent, once it has journaled the
outcome that names it (`Outcome.reservation`), so a crash never leaves a committed charge without
its result; a run that raises commits it here (it stays spent either way).

A failure's message is output: code that is not the custodian's (custom code, published packages)
fails as its category, class and line of that code, a built-in model as its own Custos error or else
as category and class (`custos.computations.failures`); the message and traceback stay at the
gateway (see `code_logs`). The output of code that is not the custodian's is checked before it
leaves (see `outputs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from custos.audit import AuditTrail
from custos.computations.base import FederatedModel, JobDataset, MaskedSums, check_job, policy_privacy
from custos.computations.custom.disclosure import check_output
from custos.computations.failures import (
    describe_builtin_failure,
    describe_code_failure,
    describe_output_refusal,
    describe_sandbox_failure,
)
from custos.computations.fedavg.dp import DpTrainingModel
from custos.computations.package.model import PACKAGE_KEY
from custos.core.digest import json_digest
from custos.core.errors import CustosError, PolicyDenied, SandboxError
from custos.core.wire import Resources, TaskAssignment
from custos.gateway.budget import GatewayBudget
from custos.gateway.code_logs import failed_task_log, write_code_log
from custos.gateway.crash import CrashPoint, reached
from custos.gateway.dal import DatasetGrant
from custos.gateway.handlers.outputs import check_code_output
from custos.gateway.handlers.task import CheckedTask, Outcome, audit_step
from custos.gateway.key_release import KeyRequester
from custos.gateway.runtimes import RuntimeKey, RuntimePool
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset
from custos.policy import AssetPolicy
from custos.privacy.controls import PrivacyControls
from custos.privacy.filters import FilterChain, FilterContext, SitePrivacy, chain_for
from custos.privacy.ledger import Reservation
from custos.privacy.plan import DpPlan
from custos.privacy.secure_sum import MaskKeys
from custos.sandbox.runner import Runner

Json = dict[str, Any]


@dataclass(frozen=True)
class _Round:
    """One compute task on its way through the common steps."""

    task: TaskAssignment
    dataset: SiteDataset
    model: FederatedModel
    columns: list[str]
    controls: PrivacyControls
    training: DpPlan | None
    chain: FilterChain
    context: FilterContext


class Compute:
    """Runs checked compute tasks in the jobs' sandboxed runtimes, which it pools and closes."""

    def __init__(
        self,
        gateway: str,
        runner: Runner,
        settings: GatewaySettings,
        audit: AuditTrail,
        *,
        budget: GatewayBudget,
        site_privacy: SitePrivacy,
        mask_keys: MaskKeys | None = None,
        keys: KeyRequester | None = None,
    ) -> None:
        self._gateway = gateway
        # Confidential packages: data keys from their owners' brokers, for this site's runtimes.
        self._keys = keys
        # The kit's key and trust, for the figures a model lets the orchestrator read only summed.
        self._mask_keys = mask_keys
        self._settings = settings
        self._audit = audit
        self._budget = budget
        # The site's privacy.yaml: scopes and their task filters (custos.privacy.filters).
        self._site_privacy = site_privacy
        self._runtimes = RuntimePool(
            runner,
            max_result_bytes=settings.max_result_bytes,
            # The spare fits a job that asks for the default resources, the usual case.
            spare_limits=settings.limits_for(Resources()),
            spares=settings.warm_spares,
            warm_spares=settings.warm_dp,
            max_runtimes=settings.tasks_in_flight,
            idle_s=settings.runtime_idle_s,
        )

    def run(self, checked: CheckedTask, dataset: SiteDataset, policy: AssetPolicy) -> Outcome:
        """Run one round of the checked task under `policy`; the output that code which is not the
        custodian's returns must be of its declared type and within its caps, and is checked
        (`outputs.check_code_output`) before it leaves."""
        try:
            return self._compute(checked, dataset, policy)
        except SandboxError as exc:
            if checked.sources is None:
                raise
            # What the sandbox said last may quote rows; a broken limit is the gateway's sentence.
            reply = {"type": type(exc).__name__, "message": exc.message}
            return self._failure(checked.run, reply, describe_sandbox_failure(exc).text())

    def _compute(self, checked: CheckedTask, dataset: SiteDataset, policy: AssetPolicy) -> Outcome:
        task, model, columns = checked.run, checked.model, checked.columns
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
        step = _Round(task, dataset, model, columns, controls, training, chain, context)
        reached(self._settings.test_crash_at, CrashPoint.BEFORE_RESERVE)
        reservation, dp = self._reserve_budget(step)
        reached(self._settings.test_crash_at, CrashPoint.AFTER_RESERVE)
        if dp is not None:
            round_input["dp"] = dp
        # A training reservation stays open (and spent) until the job's last round.
        last = training is None or round_input.get("phase") == "evaluate"
        settles = reservation if reservation is not None and last else None
        try:
            outcome = self._run_round(step, round_input, checked, policy, reservation)
        except BaseException:
            if settles is not None:
                self._budget.commit(settles)  # a run that raised has no result to keep; it stays spent
            raise
        reached(self._settings.test_crash_at, CrashPoint.AFTER_COMPUTE)
        # Committed by the agent once the outcome is journaled: a crash in between keeps the result.
        return replace(outcome, reservation=settles.id if settles is not None else None)

    def _run_round(
        self,
        step: _Round,
        round_input: Json,
        checked: CheckedTask,
        policy: AssetPolicy,
        reservation: Reservation | None,
    ) -> Outcome:
        """The round in the job's sandboxed runtime, its result filtered as it may leave."""
        task, dataset, columns = step.task, step.dataset, step.columns
        assert task.job_id is not None  # check_task refused otherwise
        # Only now, with the budget reserved, does the sandbox get its runtime and DAL grant: a job
        # the ledger refuses never boots one.
        key = RuntimeKey(task.job_id, task.dataset, json_digest(task.params), frozenset(columns))
        grants = {task.dataset: DatasetGrant(source=dataset.source, columns=frozenset(columns))}
        limits = self._settings.limits_for(task.resources)
        try:
            runtime = self._runtimes.get(
                key, limits, grants, self._settings.state_dir / "access.log", self._dal_access(task)
            )
            audit_step(self._audit, task, "dal_grant", f"{task.dataset}: {', '.join(sorted(columns))}")
            request = {
                "model": task.model, "dataset": task.dataset, "params": task.params,
                "round_input": round_input, "dal_socket": runtime.dal_socket, "dal_token": runtime.token,
            }  # fmt: skip
            if checked.confidential is not None:
                request["round_input"] = self._with_key(checked, runtime.attest())
            earlier = len(runtime.served_reads())
            reply = runtime.compute(request)
            reads = runtime.served_reads()[earlier:]
        except CustosError:
            self._runtimes.discard(key)
            raise
        if not reply.get("ok") or not isinstance(reply.get("result"), dict):
            self._runtimes.discard(key)
            if checked.sources is not None:  # code not the custodian's
                return self._failure(task, reply, describe_code_failure(reply, checked.sources).text())
            text, kept = describe_builtin_failure(reply)
            return self._failure(task, reply, text) if kept else Outcome("failed", error=text)
        result = self._filter_result(step, reply["result"], reservation)
        if checked.output is not None:
            try:
                check_output(result, checked.output, checked.caps)
                result = check_code_output(result, policy, dataset.source, columns, reads)
            except PolicyDenied as exc:  # its reason can quote the output: the code's choice
                reply = {"type": "PolicyDenied", "message": exc.message}
                return self._failure(task, reply, describe_output_refusal().text())
        return Outcome("done", result=result)

    def _dal_access(self, task: TaskAssignment) -> Callable[[str], None]:
        """Each DAL request of the job's runtime, as an event of the gateway's audit trail."""

        def record(access: str) -> None:
            audit_step(self._audit, task, "dal_access", access)

        return record

    def _with_key(self, checked: CheckedTask, public_key: str) -> Json:
        """The round input with the package's data key, wrapped by its owner's broker for the runtime
        whose public key is `public_key`: only that runtime can unwrap it."""
        confidential, task = checked.confidential, checked.run
        assert confidential is not None and task.job_id is not None
        if self._keys is None:
            raise PolicyDenied(f"site {self._gateway} cannot request keys for confidential packages")
        wrapped = self._keys.obtain(
            confidential.terms,
            confidential.digest,
            task.dataset,
            public_key,
            task.job_id,
            confidential.owner_org,
        )
        package = dict(task.round_input[PACKAGE_KEY]) | {"wrapped_key": wrapped.model_dump(mode="json")}
        return {**task.round_input, PACKAGE_KEY: package}

    def _reserve_budget(self, step: _Round) -> tuple[Reservation | None, Json | None]:
        """Reserve the round's privacy cost, when the policy sets a budget; return the reservation and
        the DP settings the sandbox gets under `round_input["dp"]`. A DP training job reserves its
        whole projected cost once, under the job; a DP release reserves its queries' cost per round."""
        task, controls, training = step.task, step.controls, step.training
        if controls.budget is None:
            return None, None
        if training is not None:
            # The whole job's projected epsilon, reserved before its first round; later rounds reuse it.
            plan = training
            reservation = self._budget.reserve(task, step.dataset, controls.budget, plan.cost, whole_job=True)
            what, settings = f"for the job's {plan.queries} DP training rounds", plan.settings or None
        elif controls.dp is not None:
            # Validate, then charge: what would fail the job on this site's schema and policy fails it
            # before anything is reserved (the orchestrator checked every site's at submit).
            dataset = JobDataset(step.dataset.schema, controls)
            check_job(step.model, task.params, {f"{self._gateway}/{task.dataset}": dataset})
            plan = step.model.plan_dp(task.params, step.dataset.schema, controls.dp)
            reservation = self._budget.reserve(task, step.dataset, controls.budget, plan.cost)
            what, settings = f"({plan.queries} queries)", plan.settings
        else:
            return None, None
        audit_step(
            self._audit, task, "budget_reserved",
            f"{task.dataset}: epsilon={plan.cost.epsilon:g} delta={plan.cost.delta:g} {what}, "
            f"reservation {reservation.id}",
        )  # fmt: skip
        return reservation, settings

    def _filter_result(self, step: _Round, result: Json, reservation: Reservation | None) -> Json:
        """The result as it may leave: through the site's and the job's result filters, then the
        model's own disclosure checks and masks, with the submitter's budget standing after a DP
        round."""
        task, controls = step.task, step.controls
        filtered = step.model.filter_site_result(
            task.params, step.chain.filter_result(result, step.context), controls
        )
        if isinstance(step.model, MaskedSums):
            assert task.job_id is not None  # check_task refused otherwise
            site = f"{self._gateway}/{task.dataset}"
            key = self._mask_keys.for_site(task.job_id, site) if self._mask_keys is not None else None
            filtered = step.model.seal_site_result(task.params, task.round_input, filtered, key)
        if reservation is not None and controls.budget is not None:
            filtered["budget"] = self._budget.standing(task, step.dataset, controls.budget)
        return filtered

    def _failure(self, task: TaskAssignment, reply: Json, text: str) -> Outcome:
        """Keep the full error at the gateway (bounded, owner-only, by job; see `code_logs`); send only
        `text`, the report of it that may leave. A custodian may release the full log later."""
        path = write_code_log(self._settings.state_dir, failed_task_log(task, self._gateway, reply))
        message = f"{task.task_id}: full log kept in {path.relative_to(self._settings.state_dir)}"
        audit_step(self._audit, task, "code_failed", message)
        return Outcome("failed", error=text)

    def stop_job(self, job_id: str) -> int:
        """End the sandboxes of a cancelled job now; from any thread. Returns how many were running."""
        return self._runtimes.stop_job(job_id)

    def live_jobs(self) -> set[str]:
        """The jobs with a runtime kept here."""
        return self._runtimes.job_ids()

    def end_job(self, job_id: str) -> None:
        """Close the runtimes of a job that has ended (told by the orchestrator's poll)."""
        self._runtimes.end_job(job_id)

    def reap(self) -> None:
        """Close job runtimes that have been idle too long."""
        self._runtimes.reap()

    def close(self) -> None:
        self._runtimes.close_all()
