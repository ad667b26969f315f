"""A poll the gateway has given up on leases nothing, and never takes back a lease handed to the
gateway's live poll.

The gateway waits a bounded time for its long poll and then polls again; a delayed connection can
deliver the first poll to the orchestrator after the second. Here that late poll is sent with the
gateway's own kit, over real TLS, carrying an older poll number than the live gateway's, while the live
gateway polls as usual: the job's one task is leased once, runs once, and finishes at attempt 1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from tests.conftest import stats_policy

from custos.core.wire import WIRE_VERSION, WIRE_VERSION_HEADER
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.orchestrator.tables import Task
from custos.pki.kit import load_kit
from custos.pki.signin import KitAuth
from custos.pki.tls import client_ssl_context


@pytest.fixture(scope="module")
def one_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    table = synthetic_patients(300, site=0, seed=11)
    work = tmp_path_factory.mktemp("stale-poll")
    cluster = Cluster(
        work,
        gateways=[GatewaySetup("site-a", "hospital-a", [DatasetSetup("patients", table, stats_policy())])],
        users=[UserSetup("alice", "university")],
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


def late_poll(kit_dir: Path, answer: dict[str, Any]) -> None:
    """A poll of the gateway's that arrives late: numbered before anything the live gateway sends."""
    kit = load_kit(kit_dir)
    with httpx.Client(
        base_url=kit.config.orchestrator_url,
        verify=client_ssl_context(kit),
        auth=KitAuth(kit),
        timeout=httpx.Timeout(10.0, read=60.0),
        headers={WIRE_VERSION_HEADER: str(WIRE_VERSION)},
    ) as http:
        response = http.get("/api/v1/gateway/tasks/next", params={"wait": 20, "poll": 1})
        answer["status"] = response.status_code
        answer["body"] = response.json()


def test_a_late_poll_leases_nothing_and_the_task_runs_once(one_site: Cluster) -> None:
    with one_site.client("alice") as alice:
        spec = alice.create_spec("late-poll", "stats@1.0.0", ["site-a/patients"], ["age"])
        alice.activate_spec(spec.id)
        time.sleep(1.0)  # the live gateway is back in its long poll, numbered after the late one
        answer: dict[str, Any] = {}
        late = threading.Thread(target=late_poll, args=(one_site.kit_dir("site-a"), answer))
        late.start()
        time.sleep(1.0)  # the late poll is in, beside the live one
        job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
        alice.wait_job(job.id, timeout=60)
        assert alice.job(job.id).state == "succeeded", one_site.logs()
    late.join(timeout=60)
    assert not late.is_alive()

    assert answer == {"status": 200, "body": {"task": None, "ended_jobs": []}}
    engine = create_engine(f"sqlite:///{one_site.work_dir / 'state' / 'orchestrator' / 'orchestrator.db'}")
    try:
        with Session(engine) as session:
            tasks = session.execute(select(Task).where(Task.job_id == job.id)).scalars().all()
    finally:
        engine.dispose()
    assert [(t.state, t.attempt) for t in tasks] == [("done", 1)]
    gateway_log = one_site.log_path("site-a").read_text(encoding="utf-8")
    assert gateway_log.count(f"task {tasks[0].id} (") == 1  # one run
