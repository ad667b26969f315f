"""What the gateway does with one task. It re-checks everything against its own policy copy, whatever
the orchestrator decided, then runs the round in the job's sandboxed runtime (see `runtimes`), whose
DAL serves only the columns this check granted, and filters the result before it leaves.

`handle_task` never raises: every failure becomes an outcome with a reason the researcher may see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from custos.audit import AuditTrail
from custos.computations.base import FederatedModel
from custos.computations.models import get_model
from custos.core.digest import json_digest
from custos.core.errors import CustosError, PolicyDenied
from custos.core.refs import parse_model_ref
from custos.core.wire import Resources, TaskAssignment, TaskKind
from custos.gateway.dal import DatasetGrant
from custos.gateway.runtimes import RuntimeKey, RuntimePool
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset, get_dataset
from custos.policy import check_access
from custos.sandbox.limits import SandboxLimits
from custos.sandbox.runner import Runner

log = logging.getLogger("custos.gateway")


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = None


def check_task(task: TaskAssignment, dataset: SiteDataset, gateway: str) -> tuple[FederatedModel, list[str]]:
    """Raise unless this site's policy allows the task. Returns the model and the columns it reads."""
    ref = parse_model_ref(task.model)
    model = get_model(ref.name, ref.version)
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
    who = task.submitter
    check_access(
        dataset.policy, f"{gateway}/{task.dataset}", who.name, who.org, ref.name, ref.version, columns
    )
    return model, columns


class TaskHandler:
    def __init__(
        self,
        gateway: str,
        site: dict[str, SiteDataset],
        runner: Runner,
        settings: GatewaySettings,
        audit: AuditTrail,
    ) -> None:
        self._audit = audit
        self._gateway = gateway
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
            model, columns = check_task(task, dataset, self._gateway)
            if task.kind is TaskKind.PREPARE:
                return Outcome("done", result={"validated": True})
            return self._compute(task, dataset, model, columns)
        except CustosError as exc:
            log.info("task %s refused or failed: %s", task.task_id, exc)
            return Outcome("failed", error=str(exc))
        except Exception as exc:  # one bad task must never stop the agent
            log.exception("task %s failed unexpectedly", task.task_id)
            return Outcome("failed", error=f"internal error at the gateway ({type(exc).__name__})")

    def _compute(
        self, task: TaskAssignment, dataset: SiteDataset, model: FederatedModel, columns: list[str]
    ) -> Outcome:
        assert task.job_id is not None and dataset.policy is not None  # check_task refused otherwise
        key = RuntimeKey(task.job_id, task.dataset, json_digest(task.params), frozenset(columns))
        grants = {task.dataset: DatasetGrant(source=dataset.source, columns=frozenset(columns))}
        limits = SandboxLimits.from_resources(task.resources, self._settings.sandbox_caps)
        runtime = self._runtimes.get(key, limits, grants, self._settings.state_dir / "access.log")
        self._audit.append(
            user=task.submitter.name, action="dal_grant", job=task.job_id,
            message=f"{task.dataset}: {', '.join(sorted(columns))}",
        )  # fmt: skip
        request = {
            "model": task.model, "dataset": task.dataset, "params": task.params,
            "round_input": task.round_input, "dal_socket": runtime.dal_socket, "dal_token": runtime.token,
        }  # fmt: skip
        try:
            reply = runtime.compute(request)
        except CustosError:
            self._runtimes.discard(key)
            raise
        if not reply.get("ok") or not isinstance(reply.get("result"), dict):
            self._runtimes.discard(key)
            return Outcome("failed", error=f"{reply.get('type', 'Error')}: {reply.get('message', '')}"[:2000])
        filtered = model.filter_site_result(task.params, reply["result"], dataset.policy.min_count)
        return Outcome("done", result=filtered)

    def reap(self) -> None:
        """Close job runtimes that have been idle too long."""
        self._runtimes.reap()

    def close(self) -> None:
        self._runtimes.close_all()
