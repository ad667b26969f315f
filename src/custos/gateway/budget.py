"""The gateway's privacy budget: the authoritative ledger (`custos.privacy.ledger.BudgetLedger`) in the
gateway's state folder (`budget.db`), keyed by the fingerprint of each dataset's rows
(`custos.data.fingerprint`), so every copy of the same rows the gateway serves shares one budget. Before
a dataset's first charge or standing, the gateway links that fingerprint in the ledger to the digest of
the file's bytes, the key of earlier releases: what was spent under it still counts.

A DP task reserves its whole cost before it runs (under the job id and round, so a retried task does
not pay twice), commits once its result is journaled (`settle`), and its result carries the
submitter's standing so that the orchestrator can mirror it for display. The ledger file is opened
on the first DP task.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from custos.core.wire import LedgerDataset, LedgerReport, LedgerSpent, TaskAssignment
from custos.data.file_source import open_source
from custos.data.fingerprint import row_lineage
from custos.gateway.site import SiteDataset
from custos.privacy.controls import BudgetCaps, PrivacyCost
from custos.privacy.ledger import BudgetLedger, Reservation, content_lineage

BUDGET_FILE = "budget.db"


def budget_job_id(task: TaskAssignment) -> str:
    """The ledger's idempotency key: one charge per job round and dataset on the same data. The dataset
    is part of it because two datasets may hold the same rows: a job reading both pays for both."""
    return f"{task.job_id}/{task.dataset}/round-{task.round}"


class GatewayBudget:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._ledger: BudgetLedger | None = None
        self._lineages: dict[Path, str] = {}
        self._lock = threading.Lock()

    @property
    def ledger(self) -> BudgetLedger:
        with self._lock:
            if self._ledger is None:
                self._ledger = BudgetLedger(self._path)
            return self._ledger

    def lineage(self, dataset: SiteDataset) -> str:
        """The dataset's budget key, the fingerprint of its rows (taken at load, else now), linked in
        the ledger to the digest of its file's bytes once per dataset and process."""
        path = dataset.entry.path
        with self._lock:
            known = self._lineages.get(path)
        if known is not None:
            return known
        # From the catalogue entry, not `dataset.source`: the rows as stored, not as the DAL serves them.
        rows = dataset.lineage or row_lineage(open_source(dataset.entry))
        self.ledger.link(rows, dataset.file_lineage or content_lineage(path))
        with self._lock:
            self._lineages[path] = rows
        return rows

    def reserve(
        self,
        task: TaskAssignment,
        dataset: SiteDataset,
        caps: BudgetCaps,
        cost: PrivacyCost,
        *,
        whole_job: bool = False,
    ) -> Reservation:
        """Debit `cost` for the submitter and their org, or raise BudgetExhausted (its message gives
        what was spent and the cap). `whole_job`: the cost covers all of the job's rounds (DP
        training), so every round reserves under one key and only the first is charged."""
        return self.ledger.reserve(
            lineage=self.lineage(dataset),
            dataset=task.dataset,
            researcher=task.submitter.name,
            org=task.submitter.org,
            epsilon=cost.epsilon,
            delta=cost.delta,
            caps=caps,
            job_id=f"{task.job_id}/{task.dataset}/training" if whole_job else budget_job_id(task),
        )

    def commit(self, reservation: Reservation) -> None:
        self.ledger.commit(reservation.id)

    def settle(self, reservation_id: str) -> None:
        """Commit the reservation a journaled result names (again, after a crash: harmless)."""
        self.ledger.commit(reservation_id)

    def report(self, site: Mapping[str, SiteDataset]) -> LedgerReport | None:
        """The ledger's head and, per dataset, what each researcher has spent: sent with heartbeats and
        results so that the orchestrator's mirror is reconciled to the ledger, even after a crash
        between a commit and the result's upload. None while the gateway has no ledger file."""
        if self._ledger is None and not self._path.exists():
            return None
        ledger = self.ledger
        datasets = []
        for name, dataset in sorted(site.items()):
            lineage = dataset.lineage
            if lineage is None:
                continue
            spent = [
                LedgerSpent(researcher=who, org=org, epsilon=eps, delta=dlt)
                for who, org, eps, dlt in ledger.totals(lineage)
            ]
            if spent:
                datasets.append(LedgerDataset(dataset=name, spent=spent))
        return LedgerReport(head=ledger.head(), datasets=datasets)

    def standing(self, task: TaskAssignment, dataset: SiteDataset, caps: BudgetCaps) -> dict[str, Any]:
        """The submitter's spent and cap on this dataset's content, for the result and the mirror."""
        lineage = self.lineage(dataset)
        who, org = task.submitter.name, task.submitter.org
        mine = self.ledger.spent(lineage, researcher=who)
        left = self.ledger.remaining(lineage, who, org, caps)
        return {
            "spent_epsilon": mine.epsilon,
            "cap_epsilon": caps.epsilon_per_researcher,
            "remaining_epsilon": left.epsilon,
            "spent_delta": mine.delta,
            "cap_delta": caps.delta_per_researcher,
            "remaining_delta": left.delta,
        }
