"""Every security-relevant step of a job is in the orchestrator's and the gateways' hash-chained audit
trails, and a gateway's event names the orchestrator event that caused it."""

from __future__ import annotations

import pytest

from custos.audit import read_events, verify_trail
from custos.core.errors import PermissionDenied
from custos.local.cluster import Cluster

SITES = ["site-a/patients", "site-b/patients", "site-c/patients"]


def test_a_job_and_a_refusal_leave_a_verifiable_trail_at_both_ends(cluster: Cluster) -> None:
    with cluster.client("alice") as alice, cluster.client("mallory") as mallory:
        spec = alice.create_spec("audited", "stats@1.0.0", SITES, ["age"])
        alice.activate_spec(spec.id)
        job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
        alice.wait_job(job.id, timeout=60)
        alice.job_result(job.id)
        with pytest.raises(PermissionDenied):
            mallory.create_spec("nosy", "stats@1.0.0", SITES, ["age"])
    state = cluster.work_dir / "state"
    orchestrator = read_events(state / "orchestrator" / "audit.log")
    assert verify_trail(state / "orchestrator" / "audit.log").ok
    actions = {(e.action, e.user) for e in orchestrator}
    for expected in [
        ("sign_in", "alice"),
        ("spec_created", "alice"),
        ("spec_active", "alice"),
        ("job_submitted", "alice"),
        ("job_succeeded", "alice"),
        ("result_download", "alice"),
        ("denied", "mallory"),
    ]:
        assert expected in actions, expected
    leases = {e.id: e for e in orchestrator if e.action == "task_leased" and e.job == job.id}
    assert {e.user for e in leases.values()} == {"site-a", "site-b", "site-c"}
    for site in ("site-a", "site-b", "site-c"):
        trail = state / site / "audit.log"
        assert verify_trail(trail).ok
        received = [e for e in read_events(trail) if e.action == "task_received" and e.job == job.id]
        assert received, site
        assert all(e.peer in leases and leases[e.peer].user == site for e in received)
        done = [e for e in read_events(trail) if e.action == "task_done" and e.job == job.id]
        assert {e.peer for e in done} <= {e.id for e in received}
