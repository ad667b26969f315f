"""Cancelling a job through real processes: a long-running custom code job is cancelled by its
researcher; its gateway learns it while the sandbox works, ends the sandbox's whole process tree, and
no result of the job is accepted. The job list shows it cancelled, and a second cancel is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from custos.core.states import JobState
from custos.local.cluster import Cluster

pytestmark = pytest.mark.integration

DATASET = "site-a/patients_code"
ADMIN_A = "admin@hospital-a"
MARKER = "4321"  # how long the job's sleep asks for: it names the sandbox's process on this host
IDLE_MARKER = "4322"  # the same, for a sleep left behind in the runtime of a job that finished its round


def sleep_long(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    import subprocess

    subprocess.run(["sleep", params["seconds"]], check=False)
    return {"rows": dal.read(datasets[0], ["age"]).num_rows}


def leave_a_sleep(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    import subprocess

    subprocess.Popen(["sleep", params["seconds"]])  # lives as long as the job's runtime
    return {"rows": dal.read(datasets[0], ["age"]).num_rows}


def _parents() -> dict[int, int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def _sleepers(marker: str = MARKER) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == f"sleep\0{marker}\0".encode():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def _is_zygote(pid: int) -> bool:
    """Whether `pid` is the zygote or one of its forks (not the bubblewrap that runs it)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"custos.sandbox.zygote" in argv and not argv[0].endswith(b"bwrap")


def _sandbox_tree(gateway_pid: int, marker: str = MARKER) -> list[int]:
    """The processes from the gateway's child down to the job's `sleep`: the job's sandbox. A gateway
    running as root forks its runtimes from a zygote (which outlives them, as does the bubblewrap that
    started it): the sandbox is then the processes below the zygote."""
    parents = _parents()
    for sleeper in _sleepers(marker):
        chain, pid = [], sleeper
        while pid in parents and pid not in (0, 1, gateway_pid):
            chain.append(pid)
            pid = parents[pid]
        if pid == gateway_pid:
            zygote = [index for index, member in enumerate(chain) if _is_zygote(member)]
            return chain[: zygote[-1]] if zygote else chain
    return []


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")}
    argv = [sys.executable, "-m", "custos.cli", *args, "--kit", str(cluster.kit_dir("alice"))]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_a_cancelled_job_s_sandbox_is_ended_and_its_result_never_accepted(cluster: Cluster) -> None:
    gateway_pid = cluster.pids()["site-a"]
    with cluster.client("alice") as alice, cluster.client(ADMIN_A) as admin:
        request = alice.submit(sleep_long, [DATASET], {"seconds": MARKER}, output="json")
        admin.approve_code(request.id, "sleeps, then counts")
        job = alice.run_code(request.id)
        tree: list[int] = []
        for _ in range(600):
            tree = _sandbox_tree(gateway_pid)
            if tree:
                break
            time.sleep(0.1)
        assert tree, f"the job's sandbox never started its sleep:\n{cluster.logs()[-3000:]}"
        assert alice.job(job.id).state is JobState.RUNNING

        cancelled = alice.cancel_job(job.id)

        assert cancelled.state is JobState.CANCELLED
        for _ in range(200):
            if not _alive(tree):
                break
            time.sleep(0.1)
        assert _alive(tree) == [], "the cancelled job's sandbox processes are still running"
        page = alice.jobs(state="cancelled")
        assert job.id in [j.id for j in page.jobs]
        # The gateway's failed round is refused too: the job stays cancelled, its task's reason unchanged.
        time.sleep(2)
        after = alice.job(job.id)
        assert after.state is JobState.CANCELLED
        assert [t.error for t in after.tasks] == ["the job was cancelled"]
    listed = _cli(cluster, "job", "list", "--state", "cancelled", "--json")
    assert job.id in [j["id"] for j in json.loads(listed.stdout)["jobs"]]
    again = _cli(cluster, "job", "cancel", job.id)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr == f"error: job {job.id} is cancelled; it cannot become cancelled\n"
    log = cluster.log_path("site-a").read_text()
    assert f"the job was cancelled; ended 1 sandbox(es) of job {job.id}" in log
    assert f"job {job.id} was cancelled; no result of it is accepted" in log


def test_the_idle_runtime_of_a_job_cancelled_between_rounds_is_ended_at_the_next_poll(
    cluster: Cluster,
) -> None:
    gateway_pid = cluster.pids()["site-a"]
    with cluster.client("alice") as alice, cluster.client(ADMIN_A) as admin:
        request = alice.submit(leave_a_sleep, [DATASET], {"seconds": IDLE_MARKER}, output="json")
        admin.approve_code(request.id, "counts, and leaves a sleep behind")
        job = alice.run_code(request.id)
        assert alice.wait_job(job.id, timeout=120).state is JobState.AWAITING_RELEASE
        tree = _sandbox_tree(gateway_pid, IDLE_MARKER)
        assert tree, "the job's runtime is kept after its round, with the sleep it left"

        alice.cancel_job(job.id)

        # The gateway's next poll (within its 20 s wait) names the job as ended; the runtime's idle
        # limit (60 s) is not what ends it.
        for _ in range(350):
            if not _alive(tree):
                break
            time.sleep(0.1)
        assert _alive(tree) == [], "the cancelled job's idle runtime is still running"
    assert f"job {job.id} has ended; closing its runtimes" in cluster.log_path("site-a").read_text()
