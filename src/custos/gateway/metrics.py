"""The gateway's Prometheus metrics, written to a file for node_exporter's textfile collector.

A gateway opens no listening port (DESIGN §7.1), so it is not scraped: it writes its metrics to
`--metrics-file` (a `.prom` file in the collector's folder), atomically (a temporary file in the same
folder, renamed over the old one), after each task and at most every `interval_s` otherwise. Every
series carries the gateway's name as `site`, so several gateways can share one collector folder.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile

from custos.gateway.budget import BUDGET_FILE
from custos.gateway.site import SiteDataset
from custos.privacy.ledger import BudgetLedger

log = logging.getLogger("custos.gateway")

TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class GatewayMetrics:
    def __init__(self, site: str, path: Path | None, state_dir: Path, *, interval_s: float = 15.0) -> None:
        self.site = site
        self.path = path
        self.interval_s = interval_s
        self._ledger_path = state_dir / BUDGET_FILE
        self._written = float("-inf")
        self._ledger: BudgetLedger | None = None
        r = self.registry = CollectorRegistry()
        labels = ["site"]
        self._connected = Gauge("custos_gateway_connected", "1 while the gateway reaches its orchestrator.",
                                labels, registry=r)  # fmt: skip
        self._polls = Counter("custos_gateway_polls", "Long polls the gateway made.", labels, registry=r)
        self._reconnects = Counter(
            "custos_gateway_retries", "Times the gateway backed off (orchestrator away or refusing).",
            labels, registry=r,
        )  # fmt: skip
        self._tasks = Counter("custos_gateway_tasks", "Tasks the gateway finished, by kind and status.",
                              [*labels, "kind", "status"], registry=r)  # fmt: skip
        self._task_seconds = Histogram(
            "custos_gateway_task_duration_seconds", "From a task's receipt to its result, at the gateway.",
            [*labels, "kind"], buckets=TASK_BUCKETS, registry=r,
        )  # fmt: skip
        self._spent = Gauge(
            "custos_gateway_dp_epsilon_spent", "DP epsilon spent on a dataset (the gateway's own ledger).",
            [*labels, "dataset"], registry=r,
        )  # fmt: skip
        self._written_at = Gauge(
            "custos_gateway_metrics_written_timestamp_seconds", "When this file was written (Unix time).",
            labels, registry=r,
        )  # fmt: skip
        self._connected.labels(site).set(0)

    def connected(self, up: bool) -> None:
        self._connected.labels(self.site).set(1 if up else 0)

    def polled(self) -> None:
        self._polls.labels(self.site).inc()

    def retried(self) -> None:
        self._reconnects.labels(self.site).inc()
        self.connected(False)

    def task_done(self, kind: str, status: str, seconds: float) -> None:
        self._tasks.labels(self.site, kind, status).inc()
        self._task_seconds.labels(self.site, kind).observe(seconds)
        self.write(force=True)

    def write(self, site: dict[str, SiteDataset] | None = None, *, force: bool = False) -> None:
        """Write the file if one is set and `interval_s` has passed (or `force`). Never raises: a full
        disk must not stop the gateway's work, so a failure is logged."""
        if self.path is None or (not force and time.monotonic() - self._written < self.interval_s):
            return
        self._written = time.monotonic()
        try:
            if site is not None:
                self._read_ledger(site)
            self._written_at.labels(self.site).set(time.time())
            write_to_textfile(str(self.path), self.registry)
        except Exception as exc:
            log.warning("could not write the metrics file %s: %s", self.path, exc)

    def _read_ledger(self, site: dict[str, SiteDataset]) -> None:
        if not self._ledger_path.is_file():
            return  # no DP task yet: nothing spent, and no ledger file is created for the metrics
        if self._ledger is None:
            self._ledger = BudgetLedger(self._ledger_path)
        ledger = self._ledger
        for name, dataset in site.items():
            if dataset.lineage is not None:
                self._spent.labels(self.site, name).set(ledger.spent(dataset.lineage).epsilon)
