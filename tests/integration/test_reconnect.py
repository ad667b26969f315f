"""Gateways ride out an orchestrator restart: they reconnect with backoff and keep working."""

from __future__ import annotations

import pyarrow as pa

from custos.local.cluster import Cluster

SITES = ["site-a/patients", "site-b/patients", "site-c/patients"]


def test_gateways_reconnect_after_an_orchestrator_restart(
    cluster: Cluster, site_tables: list[pa.Table]
) -> None:
    with cluster.client("alice") as alice:
        spec = alice.create_spec("before-restart", "stats@1.0.0", SITES, ["age"])
        alice.activate_spec(spec.id)
    gateway_pids = {name: pid for name, pid in cluster.pids().items() if name != "orchestrator"}
    cluster.restart_orchestrator()
    with cluster.client("alice") as alice:
        # The spec survived in the database, and the same gateway processes pick up the new job.
        job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
        alice.wait_job(job.id, timeout=60)
        result = alice.job_result(job.id).data
    assert result["summaries"][0]["count"] == sum(t.num_rows for t in site_tables)
    assert {name: pid for name, pid in cluster.pids().items() if name != "orchestrator"} == gateway_pids
