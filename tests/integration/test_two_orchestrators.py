"""Two orchestrator processes on one PostgreSQL database, behind a round-robin balancer: the gateways'
connections are split between them and the researcher's go through the balancer too. One orchestrator
is killed (SIGKILL, by its PID) while jobs run; the other carries every job to the end, with the right
results, and its audit trail is a chain of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from tests.conftest import stats_policy

from custos.audit import verify_trail
from custos.core.errors import CustosError
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.orchestrator.tables import Task

ROWS = 300
SITES = [
    ("site-a", "hospital-a"),
    ("site-b", "hospital-b"),
    ("site-c", "hospital-c"),
    ("site-d", "hospital-d"),
]
JOBS = 6


@pytest.fixture
def two_orchestrators(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    gateways = [
        GatewaySetup(
            name, org, [DatasetSetup("patients", synthetic_patients(ROWS, site=i, seed=5), stats_policy())]
        )
        for i, (name, org) in enumerate(SITES)
    ]
    cluster = Cluster(
        tmp_path_factory.mktemp("two-orchestrators"),
        gateways=gateways,
        users=[UserSetup("alice", "university")],
        database_url=postgres_url,
        orchestrators=2,
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


def started_tasks(url: str) -> int:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return session.execute(
                select(func.count())
                .select_from(Task)
                .where(Task.job_id.is_not(None), Task.state != "pending")
            ).scalar_one()
    finally:
        engine.dispose()


def test_the_other_orchestrator_carries_every_job_when_one_is_killed(two_orchestrators: Cluster) -> None:
    cluster = two_orchestrators
    assert cluster.database_url is not None
    datasets = [f"{name}/patients" for name, _ in SITES]
    with cluster.client("alice") as alice:
        spec = alice.create_spec("scale-out", "stats@1.0.0", datasets, ["age"])
        alice.activate_spec(spec.id)
        jobs = [
            alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]}).id for _ in range(JOBS)
        ]

    deadline = time.monotonic() + 60
    while started_tasks(cluster.database_url) == 0:  # mid-job: some task is leased
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.05)
    killed = cluster.process("orchestrator")
    assert killed.popen is not None
    killed.kill(cluster.stop_timeout)  # SIGKILL, by its PID

    results: dict[str, int] = {}
    deadline = time.monotonic() + 180
    with cluster.client("alice", timeout=10) as alice:
        for job_id in jobs:
            while job_id not in results:
                assert time.monotonic() < deadline, f"job {job_id} stuck\n{cluster.logs()}"
                try:
                    job = alice.job(job_id)
                    if job.state in ("succeeded", "failed", "cancelled"):
                        assert job.state == "succeeded", cluster.logs()
                        results[job_id] = alice.job_result(job_id).data["summaries"][0]["count"]
                except CustosError:
                    pass  # a connection to the killed orchestrator, before the balancer moved on
                time.sleep(0.2)
    assert results == dict.fromkeys(jobs, ROWS * len(SITES))

    survivor = cluster.work_dir / "state" / "orchestrator-2" / "audit.log"
    assert "task_leased" in survivor.read_text(encoding="utf-8")
    assert verify_trail(survivor).ok


def test_several_workers_on_one_port_run_a_job(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`custos orchestrator start --workers 2` on PostgreSQL: the gateways' polls and the researcher's
    calls land on either worker, and a job runs to its result."""
    gateways = [
        GatewaySetup(
            name, org, [DatasetSetup("patients", synthetic_patients(ROWS, site=i, seed=5), stats_policy())]
        )
        for i, (name, org) in enumerate(SITES[:2])
    ]
    cluster = Cluster(
        tmp_path_factory.mktemp("workers"),
        gateways=gateways,
        users=[UserSetup("alice", "university")],
        database_url=postgres_url,
        workers=2,
    )
    with cluster:
        log = cluster.log_path("orchestrator").read_text(encoding="utf-8")
        assert "(workers 2, database postgresql+psycopg://" in log
        with cluster.client("alice") as alice:
            spec = alice.create_spec(
                "workers", "stats@1.0.0", [f"{n}/patients" for n, _ in SITES[:2]], ["age"]
            )
            alice.activate_spec(spec.id)
            job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
            alice.wait_job(job.id, timeout=120)
            assert alice.job_result(job.id).data["summaries"][0]["count"] == 2 * ROWS
    assert "stopped" in cluster.log_path("orchestrator").read_text(encoding="utf-8")
