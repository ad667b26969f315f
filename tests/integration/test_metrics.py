"""Metrics of a real deployment: the orchestrator's on its loopback metrics port, each gateway's in
its textfile-collector file, after a stats job ran through both."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import stats_policy

from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.pki.kit import load_kit
from custos.pki.signin import KitAuth
from custos.pki.tls import client_ssl_context

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_job_shows_in_the_orchestrator_s_and_the_gateways_metrics(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    table = pa.table({"age": rng.integers(20, 90, 200)})
    sites = [
        GatewaySetup(f"site-{x}", f"hospital-{x}", [DatasetSetup("patients", table, stats_policy())])
        for x in "ab"
    ]
    with Cluster(tmp_path, gateways=sites, users=[UserSetup("alice", "university")], metrics=True) as cluster:
        with cluster.client("alice") as alice:
            spec = alice.create_spec("m", "stats@1.0.0", ["site-a/patients", "site-b/patients"], ["age"])
            alice.activate_spec(spec.id)
            job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
            alice.wait_job(job.id, timeout=120)

        # The loopback port needs no sign-in; it answers plain HTTP on 127.0.0.1 only.
        scraped = httpx.get(f"http://127.0.0.1:{cluster.metrics_port}/metrics", timeout=10)
        assert scraped.status_code == 200
        orchestrator = samples(scraped.text)
        assert orchestrator[("custos_jobs", (("state", "succeeded"),))] == 1
        assert orchestrator[("custos_round_latency_seconds_count", (("model", "stats"),))] == 1
        compute = (("kind", "compute"), ("status", "done"))
        assert orchestrator[("custos_task_latency_seconds_count", compute)] == 2
        assert orchestrator[("custos_gateways_online", ())] == 2
        assert orchestrator[("custos_long_polls_open", ())] >= 1
        route = ("route", "/api/v1/gateway/tasks/{task_id}/result")
        results = [
            v for (name, labels), v in orchestrator.items()
            if name == "custos_http_requests_total" and route in labels
        ]  # fmt: skip
        assert sum(results) >= 4  # a prepare and a compute task at each of the two sites

        for site in ("site-a", "site-b"):
            path = cluster.metrics_path(site)
            gateway = samples(path.read_text(encoding="utf-8"))
            assert gateway[("custos_gateway_connected", (("site", site),))] == 1
            done = (("kind", "compute"), ("site", site), ("status", "done"))
            assert gateway[("custos_gateway_tasks_total", done)] == 1
            # Written by rename: no temporary file is left beside it.
            assert sorted(p.name for p in path.parent.iterdir()) == ["site-a.prom", "site-b.prom"]


HEALTHZ = ("custos_http_requests_total", (("method", "GET"), ("route", "/healthz"), ("status", "200")))


def answered(figures: Samples) -> float:
    return sum(v for (name, _), v in figures.items() if name == "custos_http_requests_total")


def test_with_several_workers_every_scrape_counts_the_whole_deployment(
    postgres_url: str, tmp_path: Path
) -> None:
    """`--workers 2`: requests land on both workers; whichever worker answers a scrape of /metrics,
    and the parent's --metrics-port, the request counter is the sum over the workers, and it never
    goes down from one scrape to the next."""
    table = pa.table({"age": np.arange(20, 120)})
    site = GatewaySetup("site-a", "hospital-a", [DatasetSetup("patients", table, stats_policy())])
    with Cluster(
        tmp_path,
        gateways=[site],
        users=[UserSetup("ops", "university", role="project_admin")],
        database_url=postgres_url,
        workers=2,
        metrics=True,
    ) as cluster:
        kit = load_kit(cluster.kit_dir("ops"))
        # No keep-alive: each request on a connection of its own, accepted by either worker.
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(
            base_url=cluster.url, verify=client_ssl_context(kit), auth=KitAuth(kit), limits=fresh, timeout=30
        ) as admin:

            def scrape_api() -> Samples:
                r = admin.get("/metrics")
                assert r.status_code == 200, r.text
                return samples(r.text)

            def scrape_port() -> Samples:
                r = httpx.get(f"http://127.0.0.1:{cluster.metrics_port}/metrics", timeout=10)
                assert r.status_code == 200
                return samples(r.text)

            before = scrape_api()[HEALTHZ]
            sent = 8 * 25

            def probe(_: int) -> None:
                with httpx.Client(verify=client_ssl_context(kit), limits=fresh, timeout=30) as anonymous:
                    for _ in range(25):
                        assert anonymous.get(f"{cluster.url}/healthz").status_code == 200

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(probe, range(8)))

            totals = []
            for _ in range(12):
                figures = scrape_api() if len(totals) % 3 else scrape_port()
                assert figures[HEALTHZ] == before + sent
                # The stored state, read from the database by whichever process answers: the site's
                # polls land on either worker, yet it is one gateway online, with one poll open at most.
                assert figures[("custos_database_up", ())] == 1
                assert figures[("custos_jobs", (("state", "queued"),))] == 0
                assert figures[("custos_gateways_online", ())] == 1
                assert figures[("custos_long_polls_open", ())] <= 1
                totals.append(answered(figures))
            assert totals == sorted(totals)  # never down, whichever process answered
            assert totals[-1] > totals[0]  # the API scrapes themselves are counted
