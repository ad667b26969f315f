"""Site health with real processes: gateways heartbeat in their long polls; one killed by its PID
(SIGKILL, as a crash would) or stopped (SIGTERM) goes offline once it has been unseen for a long poll and
a margin; its datasets and the job waiting on it say so; started again, it is online and the job ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version

import pytest
from tests.conftest import stats_policy

from custos.core.wire import SitePublic
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.sdk import Client

pytestmark = pytest.mark.integration

# Shorter than production's long poll (25 s) and margin (10 s), so that a site goes offline in 13 s, not
# 35: the gateways ask for polls as short, so that a busy one heartbeats well within the threshold.
LONG_POLL_S = 5.0
ORCHESTRATOR = {"long_poll_max_s": LONG_POLL_S, "site_offline_margin_s": 8.0}
GATEWAY_CONFIG = {"poll_wait_s": LONG_POLL_S}


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("site-health")
    gateways = [
        GatewaySetup(
            name,
            org,
            [DatasetSetup("patients", synthetic_patients(200, site=i, seed=5), stats_policy())],
            config=GATEWAY_CONFIG,
        )
        for i, (name, org) in enumerate([("site-a", "hospital-a"), ("site-b", "hospital-b")])
    ]
    cluster = Cluster(
        work, gateways=gateways, users=[UserSetup("alice", "university")], orchestrator_options=ORCHESTRATOR
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


def site(client: Client, name: str) -> SitePublic:
    return {s.name: s for s in client.sites()}[name]


def wait_offline(client: Client, name: str, timeout: float) -> SitePublic:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = site(client, name)
        if not found.online:
            return found
        time.sleep(1.0)
    raise AssertionError(f"{name} still online after {timeout} s")


def test_a_killed_gateway_goes_offline_and_its_job_says_so(two_sites: Cluster) -> None:
    with two_sites.client("alice") as alice:
        for name, org in (("site-a", "hospital-a"), ("site-b", "hospital-b")):
            seen = site(alice, name)
            assert (seen.org, seen.version, seen.online, seen.tasks_in_flight) == (
                org,
                version("custos"),
                True,
                0,
            )
        spec = alice.create_spec("health", "stats@1.0.0", ["site-a/patients", "site-b/patients"], ["age"])
        alice.activate_spec(spec.id)

        pid = two_sites.pids()["site-b"]
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
        offline = wait_offline(alice, "site-b", timeout=offline_limit(alice) + 15)
        # Not before the threshold: a gateway between two polls is not offline.
        assert offline.offline_after_s == LONG_POLL_S + 8.0
        assert time.monotonic() - killed_at >= offline.offline_after_s - LONG_POLL_S - 1
        assert site(alice, "site-a").online
        since = f"{offline.last_seen:%Y-%m-%d %H:%M} UTC"
        status = alice.job(job.id)
        assert status.state == "running"
        assert status.waiting == [f"waiting for site-b, offline since {since}"]
        marks = {d.id: d.site_offline_since for d in alice.datasets()}
        assert marks == {"site-a/patients": None, "site-b/patients": offline.last_seen}

        listing = subprocess.run(
            [sys.executable, "-m", "custos.cli", "site", "list", "--kit", str(two_sites.kit_dir("alice"))],
            capture_output=True, text=True, timeout=60, check=False, env=os.environ | {"COLUMNS": "200"},
        )  # fmt: skip
        assert listing.returncode == 0, listing.stderr
        rows = {
            words[0]: words
            for words in map(str.split, listing.stdout.splitlines())
            if words[:1] in (["site-a"], ["site-b"])
        }
        # site, org, version, last seen (date, time), status, tasks in flight
        assert rows["site-a"][5] == "online" and rows["site-b"][5] == "offline", listing.stdout
        dataset_list = subprocess.run(
            [sys.executable, "-m", "custos.cli", "dataset", "list", "--kit", str(two_sites.kit_dir("alice"))],
            capture_output=True, text=True, timeout=60, check=False, env=os.environ | {"COLUMNS": "200"},
        )  # fmt: skip
        assert f"offline since {since}" in dataset_list.stdout, dataset_list.stdout

        # Started again, it heartbeats at once, and the job it held up finishes.
        two_sites._gateway_processes["site-b"].kill(10)  # reaped, its log closed
        two_sites.start_gateway("site-b")
        alice.wait_job(job.id, timeout=90)
        assert alice.job(job.id).state == "succeeded"
        assert site(alice, "site-b").online
        assert alice.job(job.id).waiting == []


def test_a_gateway_stopped_by_sigterm_goes_offline(two_sites: Cluster) -> None:
    with two_sites.client("alice") as alice:
        assert site(alice, "site-a").online
        os.kill(two_sites.pids()["site-a"], signal.SIGTERM)
        offline = wait_offline(alice, "site-a", timeout=offline_limit(alice) + 15)
        assert not offline.online
        two_sites._gateway_processes["site-a"].kill(10)
        two_sites.start_gateway("site-a")
        deadline = time.monotonic() + 60
        while not site(alice, "site-a").online and time.monotonic() < deadline:
            time.sleep(0.5)
        assert site(alice, "site-a").online


def offline_limit(client: Client) -> float:
    return client.sites()[0].offline_after_s
