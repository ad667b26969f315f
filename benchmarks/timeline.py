"""Where a job's time goes, read from what the deployment already records.

For each compute task, the gateway's log says when it took the task, when the orchestrator
acknowledged its start and when it acknowledged its result (httpx logs each request when the answer
arrives), and the gateway's DAL access log (`state/<gateway>/access.log`) says when the sandboxed code
finished reading its rows. With the job's own created_at and finished_at from the orchestrator:

    dispatch   job created → gateway takes the task (long-poll wake-up, assignment)
    to_read    task started → DAL read finished (for a job's first round, starting its sandboxed runtime:
               closing an idle one if the gateway's pool is full, sandbox, interpreter, imports; then
               the read itself)
    after_read DAL read finished → result acknowledged (compute, filter, upload; for the last site also
               the orchestrator's combining, done while it handles the upload)

Every figure is a wall-clock interval between two timestamps with millisecond resolution, all taken on
this one machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from custos.core.wire import JobPublic, TaskKind

_LOG_TIME = r"(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
_TAKEN = re.compile(_LOG_TIME + r" \S+ INFO task (?P<task>\S+) \((?P<kind>\w+), round (?P<round>\d+)\)")
_POSTED = re.compile(
    # httpx's request lines are DEBUG records: the benchmarks start their gateways with --log-level debug.
    _LOG_TIME + r" \S+ (?:INFO|DEBUG) HTTP Request: POST \S+/gateway/tasks/(?P<task>[^/\s]+)/(?P<what>\w+) "
)
PHASES = ("dispatch", "to_read", "after_read")


@dataclass
class TaskTimes:
    gateway: str
    task_id: str
    taken: datetime | None = None
    started: datetime | None = None
    uploaded: datetime | None = None
    reads: list[datetime] = field(default_factory=list)


def _log_time(text: str) -> datetime:
    # The gateway logs local time without a zone; astimezone() reads it as this machine's local time.
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").astimezone()


def gateway_tasks(log_path: Path, access_log: Path, gateway: str) -> dict[str, TaskTimes]:
    """Every task one gateway logged, with the DAL reads that finished while it ran."""
    tasks: dict[str, TaskTimes] = {}
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines() if log_path.is_file() else []
    for line in lines:
        if taken := _TAKEN.match(line):
            tasks.setdefault(taken["task"], TaskTimes(gateway, taken["task"])).taken = _log_time(
                taken["time"]
            )
        elif posted := _POSTED.match(line):
            times = tasks.setdefault(posted["task"], TaskTimes(gateway, posted["task"]))
            if posted["what"] == "start":
                times.started = _log_time(posted["time"])
            elif posted["what"] == "result":
                times.uploaded = _log_time(posted["time"])
    reads = _access_times(access_log)
    for times in tasks.values():
        if times.started and times.uploaded:
            times.reads = [t for t in reads if times.started <= t <= times.uploaded]
    return tasks


def _access_times(path: Path) -> list[datetime]:
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("allowed"):
            at = datetime.fromisoformat(record["time"])
            found.append(at if at.tzinfo else at.replace(tzinfo=UTC))
    return found


def job_phases(job: JobPublic, tasks: dict[str, TaskTimes]) -> dict[str, float] | None:
    """The phases of one single-round job, in seconds (the slowest site for each), or None when
    the logs do not hold every timestamp needed."""
    if job.finished_at is None:
        return None
    mine = [tasks.get(t.id) for t in job.tasks if t.kind is TaskKind.COMPUTE]
    complete = [t for t in mine if t and t.taken and t.started and t.uploaded and t.reads]
    if not mine or len(complete) != len(mine):
        return None
    created = _aware(job.created_at)
    return {
        "dispatch": max(_seconds(created, t.taken) for t in complete),
        "to_read": max(_seconds(t.started, t.reads[-1]) for t in complete),
        "after_read": max(_seconds(t.reads[-1], t.uploaded) for t in complete),
    }


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _seconds(start: datetime | None, end: datetime | None) -> float:
    assert start is not None and end is not None
    return (end - start).total_seconds()


def cluster_tasks(work_dir: Path, gateways: Iterable[str]) -> dict[str, TaskTimes]:
    """The tasks of every gateway of a `custos.local.cluster.Cluster` in `work_dir`."""
    tasks: dict[str, TaskTimes] = {}
    for name in gateways:
        tasks.update(
            gateway_tasks(work_dir / "logs" / f"{name}.log", work_dir / "state" / name / "access.log", name)
        )
    return tasks


def describe_phases(per_job: Sequence[dict[str, float]]) -> list[str]:
    """Readable lines: the median of each phase over the jobs (slowest site per job)."""
    if not per_job:
        return ["  (the logs did not hold every timestamp; no breakdown)"]
    lines = []
    labels = {
        "dispatch": "job created → gateway takes task",
        "to_read": "task started → DAL read done (runtime start, imports, read)",
        "after_read": "DAL read done → result acknowledged (compute, filter, upload)",
    }
    for phase in PHASES:
        values = [job[phase] for job in per_job]
        lines.append(f"  {labels[phase]:<72} median {median(values):6.3f} s  max {max(values):6.3f} s")
    return lines
