"""The privacy budget as the orchestrator sees it: a read-only mirror of the gateways' ledgers, and
the cost preview of a job.

The gateways keep the authoritative ledger (`custos.gateway.budget`); each DP task's result carries
the submitter's standing on its dataset after the task. `mirror` copies it into `budget_mirror`: one
row per (dataset, researcher), and one per (dataset, org) whose spent is the sum of that org's
researcher rows. The mirror is for display and for the preview only: nothing here allows or refuses
a job, and a figure can only grow (results may arrive out of order; a ledger never refunds).
The gateways' ledger reports bring it up to date when a result is lost (`budget_reconciliation.py`).
Each change of a row is also kept in `budget_history` with what moved it, for the portal's chart.
"""

from __future__ import annotations

import builtins
import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from custos.computations.base import policy_privacy
from custos.core.clock import Clock
from custos.core.identity import Identity
from custos.core.wire import BudgetPublic, BudgetStanding, DatasetCostPreview, JobCreate, JobPreview
from custos.orchestrator.services.access import can_see
from custos.orchestrator.services.datasets import DatasetService
from custos.orchestrator.services.submission import check_submission
from custos.orchestrator.tables import BudgetHistory, BudgetMirror, Gateway, Job, Task
from custos.policy.permissions import Resource
from custos.privacy.controls import BudgetCaps
from custos.privacy.plan import DpPlan

log = logging.getLogger("custos.orchestrator")

RESEARCHER, ORG = "researcher", "org"
# Float slack when comparing a cost with what remains: the ledger adds exact decimals.
_SLACK = 1e-9


def budget_public(row: BudgetMirror) -> BudgetPublic:
    return BudgetPublic(
        dataset=row.dataset,
        kind=RESEARCHER if row.kind == RESEARCHER else ORG,
        subject=row.subject,
        org=row.org,
        spent_epsilon=row.spent_epsilon,
        cap_epsilon=row.cap_epsilon,
        remaining_epsilon=max(row.cap_epsilon - row.spent_epsilon, 0.0),
        spent_delta=row.spent_delta,
        cap_delta=row.cap_delta,
        remaining_delta=max(row.cap_delta - row.spent_delta, 0.0),
        updated_at=row.updated_at,
    )


def can_view(caller: Identity, row: BudgetMirror | BudgetHistory) -> bool:
    """Your own rows and your org's, and as the permission table says (`budget.view`): an org
    admin sees every row of their org's datasets, a project admin every row."""
    if row.kind == ORG and row.subject.casefold() == caller.org.casefold():
        return True
    owner = row.subject if row.kind == RESEARCHER else None
    return can_see("budget.view", caller, Resource(owner, row.dataset_org))


class BudgetService:
    def __init__(self, datasets: DatasetService, clock: Clock) -> None:
        self._datasets = datasets
        self._clock = clock

    # --- the mirror -------------------------------------------------------------------------------

    def mirror(self, session: Session, task: Task) -> None:
        """Copy the standing a finished DP task reports into the mirror (a task without one is not DP)."""
        raw = (task.result or {}).get("budget")
        if raw is None or task.job_id is None:
            return
        try:
            standing = BudgetStanding.model_validate(raw)
        except ValidationError as exc:
            # The mirror is for display: a malformed report must not lose the task's result.
            log.warning("task %s reported a malformed budget, not mirrored: %s", task.id, exc)
            return
        job = session.get(Job, task.job_id)
        gateway = session.get(Gateway, task.gateway)
        assert job is not None and gateway is not None
        dataset = f"{task.gateway}/{task.dataset}"
        common = {"dataset": dataset, "org": job.org, "dataset_org": gateway.org}
        cause = job.id
        self.upsert(
            session,
            {**common, "kind": RESEARCHER, "subject": job.submitter},
            (standing.spent_epsilon, standing.spent_delta),
            (standing.cap_epsilon, standing.cap_delta),
            cause,
        )
        caps = self.caps(session, dataset)
        if caps is None:
            return
        spent = session.execute(
            select(func.sum(BudgetMirror.spent_epsilon), func.sum(BudgetMirror.spent_delta)).where(
                BudgetMirror.dataset == dataset,
                BudgetMirror.kind == RESEARCHER,
                BudgetMirror.org == job.org,
            )
        ).one()
        self.upsert(
            session,
            {**common, "kind": ORG, "subject": job.org},
            (float(spent[0] or 0.0), float(spent[1] or 0.0)),
            (caps.epsilon_per_org, caps.delta_per_org),
            cause,
        )

    def caps(self, session: Session, dataset: str) -> BudgetCaps | None:
        policy = self._datasets.policy(session, dataset)
        return policy_privacy(policy).budget if policy is not None else None

    def upsert(
        self,
        session: Session,
        key: dict[str, str],
        spent: tuple[float, float],
        cap: tuple[float, float],
        cause: str,
    ) -> None:
        """Raise a mirror row to `spent` (never lower it) and set its caps; a change that moves a
        figure is kept in `budget_history` with its `cause` (the job or ledger report)."""
        now = self._clock()
        values: dict[str, Any] = {
            **key,
            "spent_epsilon": spent[0],
            "spent_delta": spent[1],
            "cap_epsilon": cap[0],
            "cap_delta": cap[1],
            "updated_at": now,
        }
        # Insert-if-missing in one statement, so two first results for a row cannot collide.
        if session.get_bind().dialect.name == "postgresql":
            stmt: Any = pg_insert(BudgetMirror).values(**values).on_conflict_do_nothing()
        else:
            stmt = sqlite_insert(BudgetMirror).values(**values).on_conflict_do_nothing()
        inserted = session.execute(stmt.returning(BudgetMirror.dataset)).first() is not None
        row = session.get(
            BudgetMirror,
            (key["dataset"], key["kind"], key["subject"]),
            with_for_update=True,
            populate_existing=True,
        )
        assert row is not None
        before = (row.spent_epsilon, row.spent_delta, row.cap_epsilon, row.cap_delta)
        row.spent_epsilon = max(row.spent_epsilon, spent[0])
        row.spent_delta = max(row.spent_delta, spent[1])
        row.cap_epsilon, row.cap_delta, row.updated_at = cap[0], cap[1], now
        row.org, row.dataset_org = key["org"], key["dataset_org"]
        after = (row.spent_epsilon, row.spent_delta, row.cap_epsilon, row.cap_delta)
        if inserted or after != before:
            session.add(
                BudgetHistory(
                    at=now,
                    **{k: key[k] for k in ("dataset", "kind", "subject", "org", "dataset_org")},
                    spent_epsilon=after[0],
                    spent_delta=after[1],
                    cap_epsilon=after[2],
                    cap_delta=after[3],
                    cause=cause[:160],
                )
            )

    def list(self, session: Session, caller: Identity) -> list[BudgetPublic]:
        rows = session.execute(
            select(BudgetMirror).order_by(
                BudgetMirror.dataset, BudgetMirror.kind.desc(), BudgetMirror.subject
            )
        ).scalars()
        return [budget_public(r) for r in rows if can_view(caller, r)]

    def history(self, session: Session, caller: Identity, limit: int) -> builtins.list[BudgetHistory]:
        """The newest `limit` changes of the mirror rows `caller` may see, oldest first."""
        rows = session.execute(
            select(BudgetHistory).order_by(BudgetHistory.at.desc(), BudgetHistory.id.desc())
        ).scalars()
        out: builtins.list[BudgetHistory] = []
        for row in rows:
            if can_view(caller, row):
                out.append(row)
                if len(out) >= limit:
                    break
        return out[::-1]

    # --- the cost preview -------------------------------------------------------------------------

    def preview(self, session: Session, caller: Identity, body: JobCreate) -> JobPreview:
        """What `body` would spend per dataset and what would remain; runs and records nothing.

        It is checked as `JobService.submit` checks a job (spec, parameters, policies), so a job the
        orchestrator would refuse is refused here with the same message."""
        job = check_submission(session, self._datasets, caller, body)
        spec, model, checked = job.spec, job.model, job.datasets
        previews = []
        for dataset_id, dataset in checked.items():
            controls = dataset.privacy
            if controls.dp is None or controls.budget is None:
                previews.append(DatasetCostPreview(dataset=dataset_id, dp=False))
                continue
            plan = model.plan_dp(body.params, dataset.schema, controls.dp)
            previews.append(
                self._cost(session, caller, dataset_id, controls.dp.mechanism, plan, controls.budget)
            )
        return JobPreview(spec_id=spec.id, model=spec.model, datasets=previews)

    def _cost(
        self, session: Session, caller: Identity, dataset: str, mechanism: str, plan: DpPlan, caps: BudgetCaps
    ) -> DatasetCostPreview:
        mine = session.get(BudgetMirror, (dataset, RESEARCHER, caller.name))
        ours = session.get(BudgetMirror, (dataset, ORG, caller.org))
        spent_mine = (mine.spent_epsilon, mine.spent_delta) if mine else (0.0, 0.0)
        spent_ours = (ours.spent_epsilon, ours.spent_delta) if ours else (0.0, 0.0)
        epsilon = min(caps.epsilon_per_researcher - spent_mine[0], caps.epsilon_per_org - spent_ours[0])
        delta = min(caps.delta_per_researcher - spent_mine[1], caps.delta_per_org - spent_ours[1])
        remaining = (max(epsilon, 0.0), max(delta, 0.0))
        return DatasetCostPreview(
            dataset=dataset,
            dp=True,
            mechanism=mechanism,
            queries=plan.queries,
            epsilon=plan.cost.epsilon,
            delta=plan.cost.delta,
            cap_epsilon=caps.epsilon_per_researcher,
            cap_delta=caps.delta_per_researcher,
            remaining_epsilon=remaining[0],
            remaining_delta=remaining[1],
            mirrored=mine is not None or ours is not None,
            would_exceed=plan.cost.epsilon > remaining[0] + _SLACK or plan.cost.delta > remaining[1] + _SLACK,
        )
