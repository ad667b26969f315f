"""A gateway killed after it journaled a DP result and before the upload re-sends that result when the
task comes back at its next attempt: the job succeeds, the budget is debited once in the gateway's
ledger, and the orchestrator's mirror says the same.

The crash point is the gateway's test hook CUSTOS_TEST_CRASH_AT=after_journal (SIGKILL of itself right
after journaling a result it computed), set for one start of the gateway process only.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest
from tests.conftest import dp_stats_policy

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup

SITE = "site-a"
CRASH_HOOK = "CUSTOS_TEST_CRASH_AT"


@pytest.fixture(scope="module")
def dp_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    table = synthetic_patients(300, site=0, seed=13)
    work = tmp_path_factory.mktemp("crash-after-journal")
    cluster = Cluster(
        work,
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


def committed_charges(cluster: Cluster) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(cluster.work_dir / "state" / SITE / "budget.db")
    try:
        return list(db.execute("SELECT job_id, epsilon, state FROM reservations ORDER BY seq"))
    finally:
        db.close()


@pytest.mark.parametrize("orchestrator_restarts", [False, True], ids=["gateway-only", "orchestrator-too"])
def test_a_result_journaled_before_a_crash_is_re_sent_not_lost(
    dp_site: Cluster, orchestrator_restarts: bool
) -> None:
    """With `orchestrator_restarts`, the orchestrator is also killed and started again while the gateway
    is down: it comes back with the task leased to the dead gateway at attempt 1."""
    with dp_site.client("dora") as dora:
        spec = dora.create_spec("crash", "stats@1.0.0", [f"{SITE}/patients_dp"], ["age"])
        dora.activate_spec(spec.id)
        spent_before = {(row.dataset, row.kind): row.spent_epsilon for row in dora.budget()}

        # The gateway, started again with the crash hook: it dies right after journaling its result.
        gateway = dp_site._gateway_processes[SITE]
        dp_site.stop_gateway(SITE)
        gateway.env[CRASH_HOOK] = "after_journal"
        dp_site.start_gateway(SITE)
        job = dora.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
        for _ in range(600):
            if not gateway.running:
                break
            time.sleep(0.1)
        assert not gateway.running, dp_site.logs()
        assert gateway.popen is not None and gateway.popen.returncode == -9
        gateway.kill(10)  # reaped: closes its log before the next start
        assert [c for c in committed_charges(dp_site) if c[0].startswith(job.id)] == [
            (f"{job.id}/patients_dp/round-0", "1.0", "committed")
        ]
        if orchestrator_restarts:
            dp_site.restart_orchestrator(kill=True)

        # Started again, without the hook: the task comes back at attempt 2 and gets the journaled result.
        del gateway.env[CRASH_HOOK]
        dp_site.start_gateway(SITE)
    with dp_site.client("dora") as dora:
        dora.wait_job(job.id, timeout=90)
        result = dora.job_result(job.id).data
        mirror = {(row.dataset, row.kind): row.spent_epsilon for row in dora.budget()}

    assert result["summaries"][0]["count"] > 0
    # Debited once: one committed charge for the job in the gateway's ledger, and the mirror 1.0 more.
    assert [c for c in committed_charges(dp_site) if c[0].startswith(job.id)] == [
        (f"{job.id}/patients_dp/round-0", "1.0", "committed")
    ]
    assert mirror, "the orchestrator mirrors no spending"
    for key, spent in mirror.items():
        assert spent == pytest.approx(spent_before.get(key, 0.0) + 1.0), mirror
    ledger_total = sum(float(eps) for _, eps, state in committed_charges(dp_site) if state == "committed")
    assert all(spent == pytest.approx(ledger_total) for spent in mirror.values()), (mirror, ledger_total)
    assert "re-sending its journaled result" in dp_site.log_path(SITE).read_text(encoding="utf-8")
