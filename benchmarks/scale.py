"""Scale-out: N polling gateways (each its own process, a tiny dataset) and queued small count jobs,
on SQLite with one orchestrator process (the baseline) and on PostgreSQL with two orchestrator
processes behind a round-robin balancer, in the same run.

    .venv/bin/python benchmarks/scale.py [--gateways 3] [--jobs 4] [--postgres URL] [--skip-sqlite]
    .venv/bin/python benchmarks/scale.py --gateways 100 --jobs 20      # the full run

Each job counts one column over every gateway's dataset: a task per gateway, so `--jobs` x
`--gateways` tasks in all, queued at once. Reports tasks lost (failed, or a wrong count), duplicated
(leased more than once: an attempt after the first), stuck (not ended in `--timeout`), tasks per
second (all tasks over the time from the first submission to the last job's end), job p50/p95 (from
submission to end, by the orchestrator's clock), the orchestrators' RSS and CPU seconds (in all, and
per task done), and the gateways' RSS each. The researcher watches the jobs as one would watch many:
one request for the job list every 0.2 s (a request per unfinished job, as this benchmark once sent,
cost the orchestrator more CPU than the tasks did). The last line is the PostgreSQL run's figures as
JSON (or SQLite's, when it is the only run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from deployment import (
    cpu_by_process,
    cpu_used,
    describe_load,
    fresh_postgres,
    load_average,
    percentile,
    print_json_figures,
    stats_policy,
    work_folder,
)
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from custos.core.errors import CustosError
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.orchestrator.tables import Job, Task

ROWS = 50
ENDED = ("succeeded", "failed", "cancelled")
PAGE, MAX_PAGES = 500, 100


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` in MiB (from /proc), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """The PIDs of `pid`'s child processes (an orchestrator's workers), from /proc."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def job_states(researcher: Any, spec_id: str) -> dict[str, str]:
    """Every job of the spec and its state: one request per page of the job list, as a researcher
    watching many jobs asks (not one request per job)."""
    states: dict[str, str] = {}
    cursor = None
    for _ in range(MAX_PAGES):
        page = researcher.jobs(spec=spec_id, limit=PAGE, cursor=cursor)
        states.update({j.id: j.state for j in page.jobs})
        cursor = page.next_cursor
        if cursor is None:
            break
    return states


def run(
    work: Path, gateways: int, jobs: int, database_url: str | None, orchestrators: int, timeout: float
) -> dict[str, Any]:
    policy = stats_policy(["age"])
    sites = [
        GatewaySetup(
            f"site-{i:03d}",
            f"hospital-{i:03d}",
            [DatasetSetup("patients", synthetic_patients(ROWS, site=i), policy)],
        )
        for i in range(gateways)
    ]
    alice = [UserSetup("alice", "university")]
    cluster = Cluster(
        work,
        gateways=sites,
        users=alice,
        database_url=database_url,
        orchestrators=orchestrators,
        startup_timeout=300,
    )
    with cluster:
        pids = cluster.pids()
        orchestrator_pids = {n: p for n, p in pids.items() if n.startswith("orchestrator")}
        gateway_pids = [p for n, p in pids.items() if not n.startswith("orchestrator")]
        with cluster.client("alice", timeout=60) as researcher:
            spec = researcher.create_spec(
                "scale", "stats@1.0.0", [f"{s.name}/patients" for s in sites], ["age"]
            )
            researcher.activate_spec(spec.id)
            cpu_before = cpu_by_process(orchestrator_pids)
            started = time.monotonic()
            ids = [
                researcher.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]}).id
                for _ in range(jobs)
            ]
            ended: dict[str, str] = {}
            deadline = started + timeout
            while len(ended) < len(ids) and time.monotonic() < deadline:
                try:
                    states = job_states(researcher, spec.id)
                except CustosError:
                    states = {}
                ended.update({j: s for j, s in states.items() if j in ids and s in ENDED})
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            counts = {
                j: researcher.job_result(j).data["summaries"][0]["count"]
                for j, s in ended.items()
                if s == "succeeded"
            }
        cpu = cpu_used(cpu_before, cpu_by_process(orchestrator_pids))
        orchestrator_rss = sum(
            rss_mib(p) + sum(rss_mib(c) for c in children(p)) for p in orchestrator_pids.values()
        )
        gateway_rss = [rss_mib(p) for p in gateway_pids]
        url = database_url or f"sqlite:///{work / 'state' / 'orchestrator' / 'orchestrator.db'}"
        engine = create_engine(url)
        try:
            with Session(engine) as session:
                tasks = session.execute(select(Task).where(Task.job_id.in_(ids))).scalars().all()
                rows = session.execute(select(Job).where(Job.id.in_(ids))).scalars().all()
        finally:
            engine.dispose()
    expected = ROWS * gateways
    wrong = sum(gateways for j, c in counts.items() if c != expected)
    failed_tasks = sum(1 for t in tasks if t.state == "failed")
    latencies = [(j.finished_at - j.created_at).total_seconds() for j in rows if j.finished_at is not None]
    done_tasks = sum(1 for t in tasks if t.state == "done")
    orchestrator_cpu = sum(v for k, v in cpu.items() if k.startswith("orchestrator"))
    return {
        "database": "postgresql" if database_url else "sqlite",
        "orchestrators": orchestrators,
        "gateways": gateways,
        "tasks": jobs * gateways,
        "lost": failed_tasks + wrong + (jobs * gateways - len(tasks)),
        "duplicated": sum(t.attempt - 1 for t in tasks),
        "stuck": len(ids) - len(ended),
        "tasks_per_s": round(done_tasks / elapsed, 2),
        "p50_s": round(percentile(latencies, 0.5), 2) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 2) if latencies else None,
        "orchestrator_rss_mib": round(orchestrator_rss, 1),
        "orchestrator_cpu_s": round(orchestrator_cpu, 2),
        "orchestrator_cpu_s_per_task": round(orchestrator_cpu / max(1, done_tasks), 3),
        "gateway_rss_mib_each": round(sum(gateway_rss) / max(1, len(gateway_rss)), 1),
    }


def show(figures: dict[str, Any]) -> None:
    print(
        f"{figures['database']:>10} x{figures['orchestrators']}: "
        f"{figures['tasks']} tasks on {figures['gateways']} gateways: lost {figures['lost']}, "
        f"duplicated {figures['duplicated']}, stuck {figures['stuck']}; "
        f"{figures['tasks_per_s']} tasks/s, job p50 {figures['p50_s']} s p95 {figures['p95_s']} s; "
        f"orchestrator RSS {figures['orchestrator_rss_mib']} MiB, CPU {figures['orchestrator_cpu_s']} s "
        f"({figures['orchestrator_cpu_s_per_task']} s per task); "
        f"gateway RSS {figures['gateway_rss_mib_each']} MiB each",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds the jobs may take")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="an admin URL: the run creates a database there and drops it")  # fmt: skip
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    print(describe_load(load_average()), flush=True)
    results = []
    with work_folder("custos-scale-", keep=args.keep) as work:
        if not args.skip_sqlite:
            results.append(run(work / "sqlite", args.gateways, args.jobs, None, 1, args.timeout))
            show(results[-1])
        with fresh_postgres(args.postgres) as url:
            results.append(run(work / "postgresql", args.gateways, args.jobs, url, 2, args.timeout))
            show(results[-1])
    if len(results) == 2 and results[0]["tasks_per_s"]:
        print(
            "PostgreSQL x2 / SQLite x1 tasks per second: "
            f"{results[1]['tasks_per_s'] / results[0]['tasks_per_s']:.2f}"
        )
    print(describe_load(load_average()), flush=True)
    print_json_figures(results[-1])


if __name__ == "__main__":
    main()
