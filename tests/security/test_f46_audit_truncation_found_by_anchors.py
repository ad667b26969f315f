"""F46: lines cut from the end of an audit trail are found, for a gateway's trail and for the
orchestrator's own, against the heads the orchestrator anchored in its database.

The file alone cannot show a cut end (a shorter trail is still a valid chain). Here a real gateway
reports its trail's head with its heartbeats and results; the attacker, with write access to a trail
file, deletes its last lines (and lets the gateway grow it again past the anchor); `custos audit
verify --anchored` finds the cut, and the orchestrator records that the gateway's head went back.
The DAL's accesses are events of the same chain, so they cannot be cut from the record either.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import stats_policy

from custos.audit import HeadReader, read_events, verify_trail
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.sdk import Client

pytestmark = pytest.mark.integration

ADMIN = "admin@hospital-a"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("f46-anchors")
    site = GatewaySetup(
        "site-a",
        "hospital-a",
        [DatasetSetup("patients", synthetic_patients(200, site=0, seed=3), stats_policy())],
    )
    users = [UserSetup("alice", "university"), UserSetup("root", "operator", role="project_admin")]
    c = Cluster(work, gateways=[site], users=users)
    try:
        c.start()
    except Exception:
        print(c.logs())
        raise
    try:
        yield c
    finally:
        c.stop()


def run_job(cluster: Cluster) -> None:
    with cluster.client("alice") as alice:
        spec = alice.create_spec(f"f46-{time.monotonic_ns()}", "stats@1.0.0", ["site-a/patients"], ["age"])
        alice.activate_spec(spec.id)
        job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
        alice.wait_job(job.id, timeout=90)
        assert alice.job(job.id).state == "succeeded", cluster.logs()


def wait_anchored(client: Client, trail: str, path: Path, timeout: float = 60) -> int:
    """Until the newest anchor of `trail` is the file's head (the gateway polls again within its wait)."""
    deadline = time.monotonic() + timeout
    head = HeadReader(path).read()
    while time.monotonic() < deadline:
        newest = client.audit_anchors(trail)[-1]
        if (newest.index, newest.hash) == (head.index, head.hash):
            return newest.index
        time.sleep(0.5)
        head = HeadReader(path).read()
    raise AssertionError(f"{trail}: the anchors never reached the trail's head {head}")


def cut_last_lines(path: Path, n: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-n]))


def verify(cluster: Cluster, trail: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "custos.cli", "audit", "verify", "--trail", str(trail), *extra]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False, env=os.environ | {"COLUMNS": "200"}
    )


def test_f46_a_gateway_trail_cut_at_its_end_is_found(cluster: Cluster) -> None:
    trail = cluster.work_dir / "state" / "site-a" / "audit.log"
    run_job(cluster)
    assert any(e.action == "dal_access" for e in read_events(trail)), (
        "the DAL's accesses are not in the chain"
    )
    with cluster.client(ADMIN) as admin:
        anchored = wait_anchored(admin, "site-a", trail)
        kit = ["--anchored", "site-a", "--kit", str(cluster.kit_dir(ADMIN))]
        intact = verify(cluster, trail, *kit)
        assert intact.returncode == 0 and f"the newest at event {anchored}" in intact.stdout, intact

        cut_last_lines(trail, 3)  # the attack: the last three events (the DAL's accesses among them) go
        assert verify_trail(trail).ok, "the file alone cannot show a cut end"
        found = verify(cluster, trail, *kit)
        assert found.returncode == 1, found
        assert f"but the anchor expects {anchored}: its end was cut" in found.stdout, found.stdout

        # The gateway's next heartbeat reports the shorter head: the orchestrator records it.
        orchestrator_trail = cluster.work_dir / "state" / "orchestrator" / "audit.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(
                e.action == "audit_trail_shortened" and e.user == "site-a"
                for e in read_events(orchestrator_trail)
            ):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the orchestrator did not record the shortened trail")

        # Grown again past the anchor by the next job, the trail still fails: the old anchors stay.
        run_job(cluster)
        assert HeadReader(trail).read().index > anchored
        regrown = verify(cluster, trail, *kit)
        assert regrown.returncode == 1, regrown
        assert f"event {anchored} does not match the anchor hash" in regrown.stdout, regrown.stdout


def test_f46_the_orchestrator_trail_cut_at_its_end_is_found(cluster: Cluster) -> None:
    trail = cluster.work_dir / "state" / "orchestrator" / "audit.log"
    run_job(cluster)
    kit = ["--anchored", "orchestrator", "--kit", str(cluster.kit_dir("root"))]
    with cluster.client("root") as root:
        anchored = root.audit_anchors("orchestrator")[-1].index  # anchored as it is asked for
    assert verify(cluster, trail, *kit).returncode == 0
    cut_last_lines(trail, 2)
    found = verify(cluster, trail, *kit)
    assert found.returncode == 1, found
    assert "tampered" in found.stdout and str(anchored) in found.stdout, found.stdout
    # Only a project admin reads the orchestrator's anchors; an org admin reads its own org's gateways'.
    with cluster.client(ADMIN) as admin, pytest.raises(Exception, match="no audit anchor for orchestrator"):
        admin.audit_anchors("orchestrator")
