"""A gateway killed (SIGKILL) at each step of a DP task, and a gateway whose orchestrator goes down
while it computes: every time the job succeeds once the gateway is back, the gateway's ledger holds
one committed charge for it, and the orchestrator's mirror says what the ledger says.

The crash points are the gateway's test hook (`custos.gateway.crash`, CUSTOS_TEST_CRASH_AT), set for
one start of the gateway process only. One cluster and one spec serve the whole module; each test
runs its own job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import dp_stats_policy

from custos.core.errors import CustosError
from custos.data.synthetic import synthetic_patients
from custos.gateway.crash import CRASH_ENV, CrashPoint
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.local.process import ManagedProcess

SITE = "site-a"
DATASET = "patients_dp"
PARAMS = {"columns": ["age"], "statistics": ["count"]}
RESENT = "re-sending its journaled result"

# What the gateway's ledger holds for the job when the gateway dies at each point.
STATE_AT_CRASH: dict[CrashPoint, list[str]] = {
    CrashPoint.BEFORE_RESERVE: [],
    CrashPoint.AFTER_RESERVE: ["reserved"],
    CrashPoint.AFTER_COMPUTE: ["reserved"],
    CrashPoint.AFTER_JOURNAL: ["reserved"],
    CrashPoint.AFTER_COMMIT: ["committed"],
    CrashPoint.DURING_UPLOAD: ["committed"],
}
# The points after which the result is journaled: the next attempt re-sends it rather than running.
JOURNALED = {CrashPoint.AFTER_JOURNAL, CrashPoint.AFTER_COMMIT, CrashPoint.DURING_UPLOAD}


def test_every_crash_point_has_a_case() -> None:
    assert set(STATE_AT_CRASH) == set(CrashPoint)


@pytest.fixture(scope="module")
def dp_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    table = synthetic_patients(300, site=0, seed=13)
    # Room for every test's job of ε 1 under one researcher.
    policy = dp_stats_policy()
    policy["privacy"] = {
        "dp": {"mechanism": "laplace", "epsilon_per_job": 1.0},
        "budget": {"epsilon_per_researcher": 30.0, "epsilon_per_org": 30.0},
    }
    work = tmp_path_factory.mktemp("crash-points")
    cluster = Cluster(
        work,
        # No warm spare: every test starts the gateway twice, and a spare booted (with OpenDP) at each
        # start would mostly be thrown away; the task's own sandbox boots cold instead.
        gateways=[
            GatewaySetup(
                SITE, "hospital-a", [DatasetSetup(DATASET, table, policy)], config={"warm_spares": 0}
            )
        ],
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


@pytest.fixture(scope="module")
def spec_id(dp_site: Cluster) -> str:
    with dp_site.client("dora") as dora:
        spec = dora.create_spec("crash", "stats@1.0.0", [f"{SITE}/{DATASET}"], ["age"])
        dora.activate_spec(spec.id)
        return spec.id


@pytest.fixture
def jobs(dp_site: Cluster) -> Iterator[list[str]]:
    """The test's jobs. Afterwards the gateway runs again without the hook and each job has ended, so
    that a failed test leaves no task for the next test's gateway to pick up."""
    submitted: list[str] = []
    yield submitted
    if "orchestrator" not in dp_site.pids():
        dp_site.start_orchestrator()
    gateway = gateway_process(dp_site)
    if not gateway.running:
        gateway.kill(10)
        dp_site.start_gateway(SITE)
    with dp_site.client("dora") as dora:
        for job_id in submitted:
            with contextlib.suppress(CustosError):
                dora.wait_job(job_id, timeout=60)


def charges(cluster: Cluster, job_id: str | None = None) -> list[tuple[str, str, str]]:
    """(job id, ε, state) of the gateway's ledger rows, of one job when `job_id` is given."""
    path = cluster.work_dir / "state" / SITE / "budget.db"
    if not path.is_file():
        return []  # the gateway opens its ledger on its first DP task
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = list(db.execute("SELECT job_id, epsilon, state FROM reservations ORDER BY seq"))
    finally:
        db.close()
    return [row for row in rows if job_id is None or row[0].startswith(f"{job_id}/")]


def mirror(cluster: Cluster) -> dict[tuple[str, str], float]:
    with cluster.client("dora") as dora:
        return {(row.dataset, row.kind): row.spent_epsilon for row in dora.budget()}


def gateway_process(cluster: Cluster) -> ManagedProcess:
    return cluster._gateway_processes[SITE]


def start_with_hook(cluster: Cluster, hook: str) -> ManagedProcess:
    """The gateway started again, with the crash hook for this start only."""
    gateway = gateway_process(cluster)
    cluster.stop_gateway(SITE)
    gateway.env[CRASH_ENV] = hook
    try:
        cluster.start_gateway(SITE)
    finally:
        del gateway.env[CRASH_ENV]
    return gateway


def log_since(path: Path, offset: int) -> str:
    return path.read_bytes()[offset:].decode("utf-8", errors="replace")


def assert_debited_once(cluster: Cluster, job_id: str, spent_before: dict[tuple[str, str], float]) -> None:
    """One committed charge of ε 1 in the ledger; the mirror 1 more than before, and equal to the
    ledger's total (every charge of this module is dora's)."""
    assert charges(cluster, job_id) == [(f"{job_id}/{DATASET}/round-0", "1.0", "committed")]
    now = mirror(cluster)
    assert now, "the orchestrator mirrors no spending"
    for key, spent in now.items():
        assert spent == pytest.approx(spent_before.get(key, 0.0) + 1.0), now
    ledger_total = sum(float(eps) for _, eps, _ in charges(cluster))
    assert all(spent == pytest.approx(ledger_total) for spent in now.values()), (now, ledger_total)


CASES = [pytest.param(point, False, id=point.value) for point in CrashPoint] + [
    pytest.param(CrashPoint.AFTER_JOURNAL, True, id="after_journal-orchestrator-too")
]


@pytest.mark.parametrize(("point", "orchestrator_restarts"), CASES)
def test_a_gateway_killed_at_a_step_of_a_dp_task_finishes_the_job_with_one_debit(
    dp_site: Cluster, spec_id: str, jobs: list[str], point: CrashPoint, orchestrator_restarts: bool
) -> None:
    """With `orchestrator_restarts`, the orchestrator is also killed and started again while the gateway
    is down: it comes back with the task leased to the dead gateway at attempt 1."""
    spent_before = mirror(dp_site)
    gateway = start_with_hook(dp_site, point.value)
    with dp_site.client("dora") as dora:
        job = dora.submit_job(spec_id, PARAMS)
        jobs.append(job.id)
        for _ in range(600):
            if not gateway.running:
                break
            time.sleep(0.1)
        assert not gateway.running, dp_site.logs()
        assert gateway.popen is not None and gateway.popen.returncode == -signal.SIGKILL
        gateway.kill(10)  # reaped: closes its log before the next start
        assert [state for _, _, state in charges(dp_site, job.id)] == STATE_AT_CRASH[point]
        assert dora.job(job.id).state == "running", "the orchestrator took a result the gateway never sent"
    if orchestrator_restarts:
        dp_site.restart_orchestrator(kill=True)

    # Started again without the hook: the task comes back at attempt 2.
    offset = dp_site.log_path(SITE).stat().st_size
    dp_site.start_gateway(SITE)
    with dp_site.client("dora") as dora:
        dora.wait_job(job.id, timeout=90)
        result = dora.job_result(job.id).data

    assert result["summaries"][0]["count"] > 0
    assert_debited_once(dp_site, job.id, spent_before)
    # From the journal, not a second noisy run, once the result was journaled.
    assert (RESENT in log_since(dp_site.log_path(SITE), offset)) == (point in JOURNALED)


def process_state(pid: int) -> str:
    """The state letter of /proc/PID/stat: "T" when stopped."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def test_the_orchestrator_down_while_the_gateway_computes(
    dp_site: Cluster, spec_id: str, jobs: list[str]
) -> None:
    """The gateway stops (SIGSTOP) mid-task, after its reservation; the orchestrator is killed; the
    gateway goes on, journals and commits, and fails to upload; once the orchestrator is back, the
    same gateway process sends the result."""
    spent_before = mirror(dp_site)
    gateway = start_with_hook(dp_site, f"stop:{CrashPoint.AFTER_RESERVE.value}")
    assert gateway.popen is not None
    pid = gateway.popen.pid
    with dp_site.client("dora") as dora:
        job = dora.submit_job(spec_id, PARAMS)
        jobs.append(job.id)
    try:
        for _ in range(600):
            if process_state(pid) == "T":
                break
            time.sleep(0.1)
        assert process_state(pid) == "T", dp_site.logs()
        offset = dp_site.log_path(SITE).stat().st_size
        dp_site.stop_orchestrator(kill=True)
    finally:
        os.kill(pid, signal.SIGCONT)
    for _ in range(300):
        if "retrying in" in log_since(dp_site.log_path(SITE), offset):
            break
        time.sleep(0.1)
    assert "orchestrator unreachable" in log_since(dp_site.log_path(SITE), offset), dp_site.logs()
    # Journaled and committed before the upload that failed.
    assert [state for _, _, state in charges(dp_site, job.id)] == ["committed"]

    dp_site.start_orchestrator()
    with dp_site.client("dora") as dora:
        dora.wait_job(job.id, timeout=90)
        result = dora.job_result(job.id).data

    assert result["summaries"][0]["count"] > 0
    assert gateway.running and gateway.popen is not None and gateway.popen.pid == pid
    assert_debited_once(dp_site, job.id, spent_before)
