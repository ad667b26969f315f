"""The budget mirror is reconciled to the gateway's ledger, so a crash cannot leave them different.

The gateway is killed (its test hook CUSTOS_TEST_CRASH_AT=after_commit: SIGKILL right after it journaled
a DP result and committed the ledger's charge, before the upload) and the job is cancelled meanwhile, so
the result is never taken: the task's result can no longer bring the mirror up to date. While the
gateway is down, `budget` says the mirror may be behind, by how many tasks and how much ε at most.
Started again, the gateway's first heartbeat carries its ledger, and the mirror equals the ledger.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from tests.conftest import dp_stats_policy

from custos.core.wire import BudgetPublic
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup

pytestmark = pytest.mark.integration

SITE, DATASET = "site-a", "site-a/patients_dp"


@pytest.fixture(scope="module")
def dp_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    table = synthetic_patients(300, site=0, seed=17)
    cluster = Cluster(
        tmp_path_factory.mktemp("budget-reconciliation"),
        gateways=[GatewaySetup(SITE, "hospital-a", [DatasetSetup("patients_dp", table, dp_stats_policy())])],
        users=[UserSetup("dora", "university")],
    )
    try:
        cluster.start()
    except Exception:
        print(cluster.logs())
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


def ledger_spent(cluster: Cluster) -> Decimal:
    db = sqlite3.connect(cluster.work_dir / "state" / SITE / "budget.db")
    try:
        return sum((Decimal(e) for (e,) in db.execute("SELECT epsilon FROM reservations")), Decimal(0))
    finally:
        db.close()


def rows(client: object) -> dict[str, BudgetPublic]:
    return {row.kind: row for row in client.budget() if row.dataset == DATASET}  # type: ignore[attr-defined]


def test_a_crash_after_the_ledger_commit_is_reconciled_by_the_next_heartbeat(dp_site: Cluster) -> None:
    with dp_site.client("dora") as dora:
        spec = dora.create_spec("reconcile", "stats@1.0.0", [DATASET], ["age"])
        dora.activate_spec(spec.id)
        params = {"columns": ["age"], "statistics": ["count"]}
        dora.wait_job(dora.submit_job(spec.id, params).id, timeout=90)
        before = rows(dora)
        assert before["researcher"].spent_epsilon == pytest.approx(float(ledger_spent(dp_site)) or 1.0)

        gateway = dp_site._gateway_processes[SITE]
        dp_site.stop_gateway(SITE)
        gateway.env["CUSTOS_TEST_CRASH_AT"] = "after_commit"
        dp_site.start_gateway(SITE)
        job = dora.submit_job(spec.id, params)
        for _ in range(600):
            if not gateway.running:
                break
            time.sleep(0.1)
        assert not gateway.running and gateway.popen is not None and gateway.popen.returncode == -9
        gateway.kill(10)

        # The ledger spent ε 1 more; the mirror did not see it, and says it may be behind.
        assert ledger_spent(dp_site) == Decimal("2.0")
        lagging = rows(dora)
        assert lagging["researcher"].spent_epsilon == pytest.approx(1.0)
        assert (lagging["researcher"].behind_tasks, lagging["researcher"].behind_epsilon) == (
            1,
            pytest.approx(1.0),
        )
        dora.cancel_job(job.id)  # the result can never be taken now

        del gateway.env["CUSTOS_TEST_CRASH_AT"]
        dp_site.start_gateway(SITE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = rows(dora)
            if now["researcher"].spent_epsilon == pytest.approx(2.0):
                break
            time.sleep(0.5)
        mirror = rows(dora)
        # Not by the task's result: the job was cancelled, its task failed, no result was taken.
        cancelled = dora.job(job.id)
        assert cancelled.state == "cancelled" and [t.state for t in cancelled.tasks] == ["failed"]
    ledger = float(ledger_spent(dp_site))
    assert mirror["researcher"].spent_epsilon == pytest.approx(ledger) == pytest.approx(2.0), dp_site.logs()
    assert mirror["org"].spent_epsilon == pytest.approx(ledger)
    assert mirror["researcher"].behind_tasks == 0
    assert mirror["researcher"].reconciled_at is not None
