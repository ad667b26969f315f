"""Submit → result latency of a small federated job: `stats@1.0.0` count of `age` over three gateways.

    .venv/bin/python benchmarks/job_latency.py [--jobs 20] [--rows 10000] [--poll-ms 20] [--keep]
        [--workers N] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Starts an orchestrator and three gateways as processes on loopback (not timed), runs one warm-up job
that is not counted, then `--jobs` jobs one after another. Each is timed from just before
`submit_job` until `job_result` returns. The wait polls `client.job(id)` every `--poll-ms`
milliseconds: the SDK's wait_job backs off to 500 ms between polls, which would add up to that much to
each figure. Prints p50 and p95, the orchestrator's own created → finished time, where the time goes
(from the gateways' logs) and the load average; the last line is the figures as JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import nullcontext
from typing import Any

from deployment import (
    DATASET,
    DATASET_REFS,
    POLL_INTERVAL_S,
    RESEARCHER,
    SITES,
    cpu_by_process,
    cpu_used,
    describe_load,
    fresh_postgres,
    load_average,
    percentile,
    print_json_figures,
    server_seconds,
    stats_policy,
    wait_done,
    work_folder,
)
from timeline import PHASES, cluster_tasks, describe_phases, job_phases

from custos.core.wire import JobPublic
from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.sdk import Client

TARGET_P50_S = 1.0
PARAMS = {"columns": ["age"], "statistics": ["count"]}
JOB_TIMEOUT_S = 120


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs to time after the warm-up (default 20)")
    parser.add_argument(
        "--rows", type=int, default=10_000, help="synthetic patients per site (default 10000)"
    )
    parser.add_argument(
        "--poll-ms", type=float, default=POLL_INTERVAL_S * 1000, help="ms between job polls (default 20)"
    )
    parser.add_argument(
        "--pause-s",
        type=float,
        default=1.0,
        help="seconds between one job's result and the next submit, not timed; a researcher's jobs come "
        "seconds apart, and a gateway readies a sandbox for the next job meanwhile (default 1; 0 submits "
        "back to back)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="orchestrator worker processes (--workers of its start; default 1)",
    )
    parser.add_argument(
        "--postgres",
        default=None,
        help="a PostgreSQL URL to make a fresh database through, dropped after the run (default: SQLite "
        "in the work folder)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, kits, data)")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 16:
        parser.error(f"--workers must be 1 to 16, not {args.workers}")
    if args.workers > 1 and not args.postgres:
        parser.error("--workers above 1 needs --postgres: SQLite is served by one process")
    if not 0 <= args.pause_s <= 60:
        parser.error(f"--pause-s must be 0 to 60, not {args.pause_s}")
    if not 1 <= args.jobs <= 10_000:
        parser.error(f"--jobs must be 1 to 10000, not {args.jobs}")
    if args.rows < 10:
        parser.error(f"--rows must be 10 or more (the policy's min_count), not {args.rows}")
    if not 0 < args.poll_ms <= 1000:
        parser.error(f"--poll-ms must be more than 0 and at most 1000, not {args.poll_ms}")
    return args


def time_one_job(client: Client, spec_id: str, poll_s: float) -> tuple[float, JobPublic, int]:
    """Seconds from submit to result, the finished job, and the pooled count of the result."""
    start = time.perf_counter()
    submitted = client.submit_job(spec_id, PARAMS)
    done = wait_done(client, submitted.id, timeout=JOB_TIMEOUT_S, interval=poll_s)
    result = client.job_result(submitted.id)
    elapsed = time.perf_counter() - start
    (summary,) = result["summaries"]
    return elapsed, done, int(summary["count"])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    poll_s = args.poll_ms / 1000
    gateways = [
        GatewaySetup(
            name,
            org,
            [DatasetSetup(DATASET, synthetic_patients(args.rows, site=i, seed=7), stats_policy(["age"]))],
        )
        for i, (name, org) in enumerate(SITES)
    ]
    with (
        work_folder("custos-bench-latency-", keep=args.keep) as work,
        fresh_postgres(args.postgres, "custos_latency") if args.postgres else nullcontext() as database_url,
    ):
        database = "PostgreSQL" if args.postgres else "SQLite"
        print(
            f"starting an orchestrator ({args.workers} worker(s), {database}) and {len(SITES)} gateways "
            f"({args.rows:,} rows each) ...",
            flush=True,
        )
        with Cluster(
            # debug: the gateways log each request, which the per-phase times are read from (timeline).
            work,
            gateways=gateways,
            users=[UserSetup(*RESEARCHER)],
            project="custos-bench",
            log_level="debug",
            workers=args.workers,
            database_url=database_url,
        ) as cluster:
            client = cluster.client(RESEARCHER[0])
            spec = client.create_spec("latency", "stats@1.0.0", DATASET_REFS, ["age"])
            client.activate_spec(spec.id)
            load_before = load_average()
            warm, _, count = time_one_job(client, spec.id, poll_s)
            print(f"warm-up job: {warm:.3f} s (not counted); pooled count {count:,}")
            if count != args.rows * len(SITES):
                print(f"wrong pooled count {count:,}; expected {args.rows * len(SITES):,}", file=sys.stderr)
                return 1
            elapsed: list[float] = []
            jobs: list[JobPublic] = []
            cpu_before = cpu_by_process(cluster.pids())
            for n in range(args.jobs):
                time.sleep(args.pause_s)
                seconds, job, _ = time_one_job(client, spec.id, poll_s)
                elapsed.append(seconds)
                jobs.append(job)
                on_server = server_seconds(job)
                print(f"job {n + 1:>3}/{args.jobs}: {seconds:.3f} s (orchestrator {on_server or 0:.3f} s)")
            load_after = load_average()
            cpu = cpu_used(cpu_before, cpu_by_process(cluster.pids()))
        tasks = cluster_tasks(work, [name for name, _ in SITES])
        phases = [p for p in (job_phases(job, tasks) for job in jobs) if p is not None]
    figures = summarise(args, elapsed, jobs, phases, cpu, load_after)
    print()
    print(f"submit → result, {args.jobs} jobs, 3 gateways x {args.rows:,} rows, count of age")
    print(f"  polling client.job every {args.poll_ms:g} ms (not the SDK's wait_job back-off)")
    print(f"  {args.pause_s:g} s between one job's result and the next submit (not timed)")
    print(f"  p50 {figures['p50_s']:.3f} s   p95 {figures['p95_s']:.3f} s   ", end="")
    print(f"min {min(elapsed):.3f} s   max {max(elapsed):.3f} s")
    print(f"  orchestrator created → finished: p50 {figures['server_p50_s']:.3f} s")
    print(f"  where the time goes (from the gateways' logs, {len(phases)} jobs, slowest site per job):")
    print("\n".join(describe_phases(phases)))
    label = "job finished → result in hand (poll and GET result)"
    print(f"  {label:<72} median {figures['client_p50_s']:6.3f} s")
    per_job = ", ".join(f"{name} {seconds / args.jobs:.2f} s" for name, seconds in cpu.items())
    print(f"  CPU per job, sandboxed runtimes not included: {per_job}")
    print(f"  CPU per job, these together: {sum(cpu.values()) / args.jobs:.2f} s (of {os.cpu_count()} cores)")
    verdict = "met" if figures["p50_s"] <= TARGET_P50_S else "MISSED"
    print(f"  target p50 ≤ {TARGET_P50_S:g} s: {verdict}")
    print(f"  before: {describe_load(load_before)}")
    print(f"  after:  {describe_load(load_after)}")
    print_json_figures(figures)
    return 0


def summarise(
    args: argparse.Namespace,
    elapsed: list[float],
    jobs: list[JobPublic],
    phases: list[dict[str, float]],
    cpu: dict[str, float],
    load_after: tuple[float, float, float],
) -> dict[str, Any]:
    on_server = [s for s in (server_seconds(job) for job in jobs) if s is not None]
    client = [
        e - s for e, s in zip(elapsed, (server_seconds(job) for job in jobs), strict=True) if s is not None
    ]
    phase_medians = {f"{p}_p50_s": round(percentile([j[p] for j in phases], 0.5), 3) for p in PHASES}
    return {
        "jobs": args.jobs,
        "rows_per_site": args.rows,
        "database": "postgresql" if args.postgres else "sqlite",
        "workers": args.workers,
        "p50_s": round(percentile(elapsed, 0.5), 3),
        "p95_s": round(percentile(elapsed, 0.95), 3),
        "server_p50_s": round(percentile(on_server, 0.5), 3),
        **(phase_medians if phases else {}),
        "client_p50_s": round(percentile(client, 0.5), 3),
        "cpu_s_per_job_outside_sandboxes": round(sum(cpu.values()) / args.jobs, 3),
        "poll_interval_s": args.poll_ms / 1000,
        "pause_s": args.pause_s,
        "load_avg_1m": load_after[0],
        "target_p50_s": TARGET_P50_S,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
