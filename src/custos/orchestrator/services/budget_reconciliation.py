"""Reconciling the budget mirror to the gateways' ledgers, and saying when it may be behind.

The mirror (`services/budget.py`) is copied from each DP task's result. A gateway that crashes after
its ledger committed a charge and before the result reached the orchestrator would leave the mirror
short for good. So every gateway also reports its ledger (`LedgerReport`: the ledger's head and, per
dataset, what each researcher has spent, reserved or committed) with every heartbeat (each poll, and
every poll wait while it runs a task) and every result, and `reconcile` brings each mirror row up to
it: researcher rows to the ledger's figure, org rows to the sum over the org's researchers. A figure
never goes down (a ledger never refunds, and reports may arrive out of order: one of an older ledger
head than the one reconciled is ignored). After a gateway's next heartbeat, its mirror equals its
ledger.

Between two reports the mirror can be behind by what tasks leased since the last report spent:
`with_lag` counts those tasks per dataset and bounds their cost with the job's DP plan, and says
when the gateway is offline (so the mirror stays behind until it returns).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from custos.computations.base import policy_privacy
from custos.core.clock import Clock
from custos.core.errors import CustosError
from custos.core.refs import parse_model_ref
from custos.core.schema import DatasetSchema
from custos.core.states import TaskState
from custos.core.wire import BudgetPublic, LedgerReport, TaskKind
from custos.orchestrator.services.budget import ORG, RESEARCHER, BudgetService
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.services.models import resolve_model
from custos.orchestrator.services.sites import offline_since
from custos.orchestrator.tables import Dataset, Gateway, Job, Task

log = logging.getLogger("custos.orchestrator")


class BudgetReconciler:
    def __init__(
        self, budget: BudgetService, datasets: DatasetService, clock: Clock, offline_after_s: float
    ) -> None:
        self._budget = budget
        self._datasets = datasets
        self._clock = clock
        self._offline_after_s = offline_after_s

    def reconcile(self, session: Session, gateway_name: str, report: LedgerReport) -> None:
        """Bring the mirror of `gateway_name`'s datasets up to its ledger's report."""
        gateway = session.get(Gateway, gateway_name, with_for_update=True)
        if gateway is None:
            return
        if gateway.ledger_head is not None and report.head < gateway.ledger_head:
            return  # a report older than the one reconciled, arriving late
        for entry in report.datasets:
            dataset = f"{gateway_name}/{entry.dataset}"
            caps = self._budget.caps(session, dataset) if session.get(Dataset, dataset) else None
            if caps is None:
                log.info("ledger of %s: %s has no budget policy here; not mirrored", gateway_name, dataset)
                continue
            cause = f"ledger report {report.head} of {gateway_name}"
            per_org: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
            for spent in entry.spent:
                key = {"dataset": dataset, "kind": RESEARCHER, "subject": spent.researcher}
                common = {"org": spent.org, "dataset_org": gateway.org}
                self._budget.upsert(
                    session,
                    key | common,
                    (spent.epsilon, spent.delta),
                    (caps.epsilon_per_researcher, caps.delta_per_researcher),
                    cause,
                )
                per_org[spent.org][0] += spent.epsilon
                per_org[spent.org][1] += spent.delta
            for org, (epsilon, delta) in per_org.items():
                self._budget.upsert(
                    session,
                    {"dataset": dataset, "kind": ORG, "subject": org, "org": org, "dataset_org": gateway.org},
                    (epsilon, delta),
                    (caps.epsilon_per_org, caps.delta_per_org),
                    cause,
                )
        gateway.ledger_head = report.head
        gateway.ledger_reported_at = self._clock()

    def with_lag(self, session: Session, rows: list[BudgetPublic]) -> list[BudgetPublic]:
        """The rows, each saying when its gateway's ledger was last reconciled, how many DP tasks were
        leased there since (and the most they can have spent), and whether the gateway is offline."""
        now = self._clock()
        lag: dict[str, tuple[int, float]] = {}
        out = []
        for row in rows:
            gateway_name, _, name = row.dataset.partition("/")
            gateway = session.get(Gateway, gateway_name)
            if gateway is None:
                out.append(row)
                continue
            if row.dataset not in lag:
                lag[row.dataset] = self._tasks_since(session, gateway, name)
            tasks, epsilon = lag[row.dataset]
            out.append(
                row.model_copy(
                    update={
                        "reconciled_at": gateway.ledger_reported_at,
                        "behind_tasks": tasks,
                        "behind_epsilon": epsilon,
                        "site_offline_since": offline_since(gateway, now, self._offline_after_s),
                    }
                )
            )
        return out

    def _tasks_since(self, session: Session, gateway: Gateway, dataset: str) -> tuple[int, float]:
        """The compute tasks leased at `gateway` on `dataset` since its ledger was last reported, and
        the most their DP plans can have spent."""
        query = select(Task).where(
            Task.gateway == gateway.name,
            Task.dataset == dataset,
            Task.kind == TaskKind.COMPUTE.value,
            Task.state.in_([TaskState.LEASED, TaskState.RUNNING]),
        )
        if gateway.ledger_reported_at is not None:
            query = query.where(Task.updated_at > gateway.ledger_reported_at)
        tasks = list(session.execute(query).scalars())
        return len(tasks), sum(self._planned_epsilon(session, t) for t in tasks)

    def _planned_epsilon(self, session: Session, task: Task) -> float:
        job = session.get(Job, task.job_id) if task.job_id else None
        policy = self._datasets.policy(session, f"{task.gateway}/{task.dataset}")
        row = session.get(Dataset, f"{task.gateway}/{task.dataset}")
        if job is None or policy is None or row is None:
            return 0.0
        controls = policy_privacy(policy)
        if controls.dp is None:
            return 0.0
        try:
            ref = parse_model_ref(job.model)
            model = resolve_model(session, ref.name, ref.version)
            plan = model.plan_dp(job.params, DatasetSchema.model_validate(row.schema_json), controls.dp)
        except CustosError:
            return 0.0
        return plan.cost.epsilon
