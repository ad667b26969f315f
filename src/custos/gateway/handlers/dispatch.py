"""What the gateway does with one task. It re-checks everything, whatever the orchestrator decided:
first the site's authorization (may this submitter, in this role, do this here?), then its own policy
copy, then the checks of the task's kind (a built-in model, reviewed custom code, or a published
package; one module each). Then it runs the round in the job's sandboxed runtime (see `compute`),
whose DAL serves only the columns these checks granted, and filters the result before it leaves.

`handle_task` never raises: every failure becomes an outcome with a reason the researcher may see.
"""

from __future__ import annotations

import logging
from typing import assert_never

from custos.audit import AuditTrail
from custos.core.errors import CustosError
from custos.core.wire import TaskAssignment, TaskKind
from custos.gateway.budget import BUDGET_FILE, GatewayBudget
from custos.gateway.handlers.builtin import check_builtin
from custos.gateway.handlers.compute import Compute
from custos.gateway.handlers.custom import check_custom
from custos.gateway.handlers.package import check_package
from custos.gateway.handlers.task import (
    CheckedTask,
    ModelSource,
    Outcome,
    SiteRules,
    audit_step,
    model_source,
)
from custos.gateway.key_release import KeyRequester
from custos.gateway.model_cache import ArchiveSource, ModelCache
from custos.gateway.policies import PolicyKeeper, is_older
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset, get_dataset
from custos.policy import AssetPolicy, SiteAuthorization
from custos.policy.signing import CertificateCheck, PolicyRefused
from custos.privacy.filters import SitePrivacy
from custos.privacy.secure_sum import MaskKeys
from custos.sandbox.runner import Runner

log = logging.getLogger("custos.gateway")


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
        mask_keys: MaskKeys | None = None,
        keys: KeyRequester | None = None,
    ) -> None:
        # Approvals of custom code are verified as the policies are: against this site's trust.
        self._rules = SiteRules(gateway, org, authorization, check_certificate or policies.check_certificate)
        # Published packages: verified and cached by digest (`models`), fetched from `archives`.
        self._models, self._archives = models, archives
        self._audit = audit
        self._policies = policies
        self._site = site
        self._settings = settings
        self._compute = Compute(
            gateway, runner, settings, audit,
            budget=budget or GatewayBudget(settings.state_dir / BUDGET_FILE),
            site_privacy=site_privacy or SitePrivacy(), mask_keys=mask_keys, keys=keys,
        )  # fmt: skip

    def handle_task(self, task: TaskAssignment) -> Outcome:
        event = audit_step(
            self._audit, task, "task_received",
            f"{task.task_id} ({task.kind}, round {task.round}) {task.model} on {task.dataset}",
            peer=task.audit_event,
        )  # fmt: skip
        outcome = self._handle(task)
        action = "task_done" if outcome.status == "done" else "task_failed"
        audit_step(self._audit, task, action, outcome.error or task.task_id, peer=event)
        return outcome

    def _handle(self, task: TaskAssignment) -> Outcome:
        try:
            dataset = get_dataset(self._site, task.dataset)
            # The caps are a ceiling: a spec asking for more is refused, at activation (prepare).
            self._settings.limits_for(task.resources)
            policy = self._policy_for(task)
            checked = self._check(task, dataset, policy)
            if checked.audit is not None:
                audit_step(self._audit, task, *checked.audit)
            if task.kind is TaskKind.PREPARE:
                return Outcome("done", result={"validated": True})
            assert policy is not None  # the checks of every kind refuse a task without one
            return self._compute.run(checked, dataset, policy)
        except CustosError as exc:
            log.info("task %s refused or failed: %s", task.task_id, exc)
            return Outcome("failed", error=str(exc))
        except Exception as exc:  # one bad task must never stop the agent
            log.exception("task %s failed unexpectedly", task.task_id)
            return Outcome("failed", error=f"internal error at the gateway ({type(exc).__name__})")

    def _check(self, task: TaskAssignment, dataset: SiteDataset, policy: AssetPolicy | None) -> CheckedTask:
        """The checks of the task's kind, which raise unless this site runs it as it stands."""
        kind = model_source(task)
        match kind:
            case ModelSource.BUILTIN:
                return check_builtin(task, dataset, policy, self._rules)
            case ModelSource.CUSTOM:
                return check_custom(task, dataset, policy, self._rules)
            case ModelSource.PACKAGE:
                return check_package(task, dataset, policy, self._rules, self._models, self._archives)
            case _:
                assert_never(kind)

    def _policy_for(self, task: TaskAssignment) -> AssetPolicy | None:
        """The policy in force for the task's dataset, after adopting a newer one the task carries. A
        relayed policy that does not verify refuses the task; an older one is ignored."""
        if task.policy is not None:
            try:
                self._policies.offer(task.dataset, task.policy)
            except PolicyRefused as exc:
                if not is_older(task.policy, self._policies.signed(task.dataset)):
                    audit_step(self._audit, task, "policy_refused", exc.message)
                    raise
                log.info("task %s carries an older policy than the one in force; using ours", task.task_id)
        return self._policies.current(task.dataset)

    def stop_job(self, job_id: str) -> int:
        """End the sandboxes of a cancelled job now; from any thread. Returns how many were running."""
        return self._compute.stop_job(job_id)

    def live_jobs(self) -> set[str]:
        """The jobs with a runtime kept here."""
        return self._compute.live_jobs()

    def end_job(self, job_id: str) -> None:
        """Close the runtimes of a job that has ended (told by the orchestrator's poll)."""
        self._compute.end_job(job_id)

    def reap(self) -> None:
        """Close job runtimes that have been idle too long."""
        self._compute.reap()

    def close(self) -> None:
        self._compute.close()
