"""What the benchmarks share: the three sites, a job wait that polls at a fixed interval, CPU and load
readings, and reporting.

Each benchmark script imports this module from its own folder (`python benchmarks/<name>.py` puts
`benchmarks/` first on sys.path). A benchmark prints readable lines and ends with exactly one line of
JSON holding its figures.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from custos.core.errors import Conflict
from custos.core.states import JobState
from custos.core.wire import JobPublic
from custos.sdk import Client
from custos.sdk.jobs import JOB_DONE_STATES
from custos.sdk.waiting import WaitTimeout

SITES = [("site-a", "hospital-a"), ("site-b", "hospital-b"), ("site-c", "hospital-c")]
DATASET = "patients"
RESEARCHER = ("alice", "university")
DATASET_REFS = [f"{site}/{DATASET}" for site, _ in SITES]
# The SDK's wait_job sleeps 50 ms, then 1.5 times longer each poll up to 500 ms: a job that ends just
# after a poll is seen up to half a second late. The benchmarks poll at this fixed, small interval
# instead. Not smaller: each poll is an HTTPS request that costs the orchestrator and the client about a
# millisecond of CPU, and on two cores polling every 5 ms slowed the jobs themselves (docs/benchmarks.md).
POLL_INTERVAL_S = 0.02


def stats_policy(columns: Sequence[str]) -> dict[str, object]:
    """The asset policy every site gets: the researcher's org may run stats 1.x on `columns`."""
    return {
        "dataset": DATASET,
        "grants": [{"orgs": [RESEARCHER[1]], "models": ["stats@>=1.0,<2"], "columns": list(columns)}],
        "min_count": 10,
    }


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def describe_load(load: tuple[float, float, float]) -> str:
    return (
        f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min, {os.cpu_count()} cores)"
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default), without numpy."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def wait_done(client: Client, job_id: str, *, timeout: float, interval: float = POLL_INTERVAL_S) -> JobPublic:
    """Poll `client.job` every `interval` seconds until the job is done, at most `timeout` seconds.

    Raises Conflict if it failed or was cancelled and WaitTimeout when the time is up, as wait_job does.
    """
    deadline = time.monotonic() + timeout
    while True:
        job = client.job(job_id)
        if job.state in JOB_DONE_STATES:
            break
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"job {job_id} is still {job.state} after {timeout:g} s")
        time.sleep(interval)
    if job.state in (JobState.FAILED, JobState.CANCELLED):
        raise Conflict(f"job {job_id} {job.state}: {job.reason or 'no reason given'}")
    return job


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of process `pid` and of the children it has waited for; None when /proc
    cannot tell (not Linux, or the process is gone). A gateway's sandboxed runtimes do not show in its
    figure: they outlive the job, and their time does not come up through bubblewrap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (from /proc; empty when it is gone)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text(encoding="ascii").split()]
    except OSError:
        pass
    return found


def tree_cpu_seconds(pid: int) -> float | None:
    """cpu_seconds of `pid` and of its live children: an orchestrator started with --workers serves
    from worker processes under a parent that only watches them."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(cpu_seconds(child) or 0.0 for child in children(pid))


def cpu_by_process(pids: dict[str, int]) -> dict[str, float | None]:
    """cpu_seconds of each named process (an orchestrator's with its workers), plus this one
    (`benchmark`, the client's side)."""
    times = os.times()
    figures = {
        name: tree_cpu_seconds(pid) if name.startswith("orchestrator") else cpu_seconds(pid)
        for name, pid in pids.items()
    }
    return {**figures, "benchmark": times.user + times.system}


def cpu_used(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float]:
    """CPU seconds each process used between two `cpu_by_process` readings."""
    used = {}
    for name, start in before.items():
        end = after.get(name)
        if start is not None and end is not None:
            used[name] = round(end - start, 3)
    return used


def server_seconds(job: JobPublic) -> float | None:
    """How long the orchestrator says the job took, from its own created_at and finished_at."""
    if job.finished_at is None:
        return None
    return (job.finished_at - job.created_at).total_seconds()


@contextmanager
def work_folder(prefix: str, *, keep: bool) -> Iterator[Path]:
    """A fresh temporary folder, removed afterwards unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"work folder kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def print_json_figures(figures: dict[str, Any]) -> None:
    """The last line of every benchmark: its figures as one JSON object."""
    print(json.dumps(figures), flush=True)


@contextmanager
def fresh_postgres(admin_url: str, prefix: str = "custos_bench") -> Iterator[str]:
    """A new PostgreSQL database made through `admin_url` for one run, dropped after it; yields its
    SQLAlchemy URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
