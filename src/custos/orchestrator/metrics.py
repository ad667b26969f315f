"""The orchestrator's Prometheus metrics (docs/operations.md#metrics says what each one means).

Counters and histograms are counted as events happen (a lease expires, a round is aggregated, a
request is answered); gauges of stored state (jobs and tasks by state, the DP budget mirror) are read
from the database at scrape time, so every orchestrator worker sharing a database reports the same
figures. Each app has its own registry: nothing is process-global.

With several worker processes (`custos orchestrator start --workers N`), prometheus_client's
multiprocess mode makes the counted figures the deployment's whole: each worker writes its counts to
files of its own in a folder the parent made for this start (`PROMETHEUS_MULTIPROC_DIR`, set before
the workers are spawned, so their prometheus_client is imported in that mode), and a scrape, whichever
worker answers it, or the parent's `--metrics-port`, adds up every worker's files (`shared_registry`).
The gauges of stored state are read from the database by the scraping process, as with one worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from custos.core.clock import utcnow
from custos.core.states import JobState, TaskState
from custos.orchestrator.db import Database
from custos.orchestrator.notifier import TaskNotifier
from custos.orchestrator.tables import BudgetMirror, Gateway, Job, Task

log = logging.getLogger(__name__)

# A gateway counts as online while its newest poll is at most this old (a live gateway polls again
# as soon as its previous poll returns, at most `long_poll_max_s` = 25 s later).
ONLINE_WITHIN_S = 60.0
# Seconds: a task of a stats job takes tens of milliseconds; a FedAvg round minutes.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class StoredState(Collector):
    """Gauges read from the database when scraped; `custos_database_up` 0 when it cannot be read.

    `custos_gateways_online` counts the gateways whose long polls reached this process (`notifier`);
    with several workers (no `notifier`: a gateway's polls land on any of them), the gateways the
    database saw (a poll, a result or a heartbeat moves `last_seen`) in the same time."""

    def __init__(self, db: Database, notifier: TaskNotifier | None) -> None:
        self.db = db
        self.notifier = notifier

    def collect(self) -> Iterator[Metric]:
        online = GaugeMetricFamily(
            "custos_gateways_online", "Gateways whose newest long poll reached the orchestrator "
            f"in the last {ONLINE_WITHIN_S:g} s.",
        )  # fmt: skip
        if self.notifier is not None:
            online.add_metric([], len(self.notifier.recent_gateways(ONLINE_WITHIN_S)))
            yield online
        up = GaugeMetricFamily("custos_database_up", "1 if the database answered this scrape, else 0.")
        try:
            families = list(self._stored())
            if self.notifier is None:
                online.add_metric([], self._seen_gateways())
                families.insert(0, online)
        except SQLAlchemyError as exc:
            log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _seen_gateways(self) -> int:
        since = utcnow() - timedelta(seconds=ONLINE_WITHIN_S)
        with self.db.session() as session:
            return session.scalar(select(func.count()).where(Gateway.last_seen >= since)) or 0

    def _stored(self) -> Iterator[Metric]:
        with self.db.session() as session:
            jobs = {
                state: n for state, n in session.execute(select(Job.state, func.count()).group_by(Job.state))
            }
            tasks = {
                state: n
                for state, n in session.execute(select(Task.state, func.count()).group_by(Task.state))
            }
            budget = session.execute(
                select(BudgetMirror.dataset, BudgetMirror.subject, BudgetMirror.spent_epsilon,
                       BudgetMirror.spent_delta, BudgetMirror.cap_epsilon)
                .where(BudgetMirror.kind == "org")
                .order_by(BudgetMirror.dataset, BudgetMirror.subject)
            ).all()  # fmt: skip
        job_family = GaugeMetricFamily("custos_jobs", "Jobs by state.", labels=["state"])
        for job_state in JobState:
            job_family.add_metric([job_state.value], jobs.get(job_state, 0))
        yield job_family
        task_family = GaugeMetricFamily("custos_tasks", "Tasks by state.", labels=["state"])
        for task_state in TaskState:
            task_family.add_metric([task_state.value], tasks.get(task_state, 0))
        yield task_family
        labels = ["dataset", "org"]
        spent = GaugeMetricFamily(
            "custos_dp_epsilon_spent", "DP epsilon an org has spent on a dataset (as its gateway reported).",
            labels=labels,
        )  # fmt: skip
        spent_delta = GaugeMetricFamily(
            "custos_dp_delta_spent", "DP delta an org has spent on a dataset (as its gateway reported).",
            labels=labels,
        )  # fmt: skip
        cap = GaugeMetricFamily(
            "custos_dp_epsilon_cap", "The org's epsilon cap on the dataset.", labels=labels
        )
        for dataset, org, eps, delta, eps_cap in budget:
            spent.add_metric([dataset, org], eps)
            spent_delta.add_metric([dataset, org], delta)
            cap.add_metric([dataset, org], eps_cap)
        yield from (spent, spent_delta, cap)


def shared_registry(shared_dir: Path, db: Database) -> CollectorRegistry:
    """What a scrape of a several-worker orchestrator answers: every worker's counted figures, summed
    from the files in `shared_dir`, and the stored state, read from the database."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(shared_dir))  # type: ignore[no-untyped-call]
    registry.register(StoredState(db, None))
    return registry


class OrchestratorMetrics:
    """The metrics of one orchestrator app, in a registry of its own. With `shared_dir` (a worker of
    several, its prometheus_client in multiprocess mode), a scrape answers `shared_registry`."""

    def __init__(self, db: Database, notifier: TaskNotifier, shared_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.task_latency = Histogram(
            "custos_task_latency_seconds", "From a task's queueing to its result (all its attempts).",
            ["kind", "status"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.round_latency = Histogram(
            "custos_round_latency_seconds", "From a job round's queueing to its aggregation.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.lease_expiries = Counter(
            "custos_lease_expiries", "Task leases that expired before the gateway sent a result.", registry=r
        )
        self.lost_leases = Counter(
            "custos_leases_lost", "Task leases a gateway no longer held (a lost poll answer or a restart).",
            registry=r,
        )  # fmt: skip
        self.retries = Counter("custos_task_retries", "Tasks queued again for a next attempt.", registry=r)
        self.long_polls = Gauge(
            "custos_long_polls_open", "Gateway long polls open now.", registry=r,
            multiprocess_mode="livesum",  # the workers' open polls added up, of live workers only
        )  # fmt: skip
        self.http_requests = Counter(
            "custos_http_requests", "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self.http_latency = Histogram(
            "custos_http_request_duration_seconds", "Time to answer an HTTP request (long polls included).",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        if shared_dir is None:
            r.register(StoredState(db, notifier))
            self.scraped = r
        else:
            self.scraped = shared_registry(shared_dir, db)
        self._lock = threading.Lock()

    def render(self) -> bytes:
        """The exposition text; one scrape at a time (the stored-state queries are not repeated)."""
        with self._lock:
            return generate_latest(self.scraped)

    @contextmanager
    def long_poll_open(self) -> Iterator[None]:
        self.long_polls.inc()
        try:
            yield
        finally:
            self.long_polls.dec()


class RequestMetrics:
    """ASGI middleware: counts each HTTP request by its route template (`/api/v1/jobs/{job_id}`, never
    the path, so the label set stays bounded), its method and its status."""

    def __init__(self, app: Asgi, metrics: OrchestratorMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            method = str(scope.get("method", "GET"))
            self.metrics.http_requests.labels(method, template, str(status)).inc()
            self.metrics.http_latency.labels(method, template).observe(time.perf_counter() - started)
