"""B11: a fork bomb, a huge allocation, a busy loop and a job that never ends are cut off by their
limits; the run fails naming the limit, no process of it is left, and other runs are unaffected."""

from __future__ import annotations

import os
import textwrap
import threading
from pathlib import Path

import pytest

from custos.sandbox import BubblewrapRunner, SandboxLimits, SandboxRequest, SandboxResult

ROOT = os.geteuid() == 0
# Small limits keep these fast; the wall clock is generous (a busy machine stretches CPU seconds)
# except where it is what the test is about.
LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=60, max_processes=32, memory_bytes=512 << 20)


@pytest.fixture(scope="module")
def runner(sandbox_runner: BubblewrapRunner) -> BubblewrapRunner:
    return sandbox_runner  # each runner in turn (tests/conftest.py)


def processes_of(uid: int) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        if int(uid_line.split()[1]) == uid:
            pids.append(int(pid))
    return pids


def run(
    runner: BubblewrapRunner, tmp_path: Path, source: str, limits: SandboxLimits = LIMITS
) -> SandboxResult:
    output = tmp_path / "output"
    output.mkdir(exist_ok=True)
    # Every job first prints its uid, so the test can look for processes the run left behind.
    prologue = "import os, sys\nprint(os.getuid(), flush=True)\n"
    return runner.run(
        SandboxRequest(argv=["-c", prologue + textwrap.dedent(source)], output_dir=output, limits=limits)
    )


def assert_nothing_left(result: SandboxResult) -> None:
    if ROOT:
        uid = int(result.stdout.split()[0])
        assert uid != 0
        assert processes_of(uid) == []


def test_b11_fork_bomb_stopped(runner: BubblewrapRunner, tmp_path: Path) -> None:
    # A neighbour run that starts processes of its own while the bomb goes off.
    neighbour_source = """
        import subprocess, time
        time.sleep(0.3)
        children = [subprocess.Popen(["/usr/bin/sleep", "0.2"]) for _ in range(10)]
        print("fine" if all(child.wait() == 0 for child in children) else "starved")
    """
    others: list[SandboxResult] = []
    (tmp_path / "n").mkdir()
    neighbour = threading.Thread(target=lambda: others.append(run(runner, tmp_path / "n", neighbour_source)))
    neighbour.start()

    result = run(runner, tmp_path, "while True:\n    os.fork()\n")
    neighbour.join(timeout=60)

    assert result.failure == "process limit of 32 reached"
    assert result.exit_code == 102
    assert_nothing_left(result)
    assert [r.stdout.split()[-1] for r in others] == ["fine"]  # a run next to the bomb is unaffected
    assert others[0].ok


def test_b11_thread_bomb_stopped(runner: BubblewrapRunner, tmp_path: Path) -> None:
    result = run(
        runner,
        tmp_path,
        """
        import threading, time
        for _ in range(10_000):
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        """,
    )

    assert result.failure == "process limit of 32 reached"
    assert_nothing_left(result)


def test_b11_memory_hog_stopped(runner: BubblewrapRunner, tmp_path: Path) -> None:
    result = run(runner, tmp_path, "hog = bytearray(2 << 30)\n")

    assert result.failure == "memory limit of 512 MiB exceeded"
    assert "MemoryError" in result.stderr
    assert_nothing_left(result)


def test_b11_memory_hog_in_numpy_stopped(runner: BubblewrapRunner, tmp_path: Path) -> None:
    result = run(
        runner,
        tmp_path,
        "import numpy as np\nparts = [np.ones(50_000_000) for _ in range(100)]\n",
        SandboxLimits(cpu_seconds=10, wall_seconds=30, max_processes=32, memory_bytes=1 << 30),
    )

    assert result.failure == "memory limit of 1 GiB exceeded"
    assert_nothing_left(result)


@pytest.mark.parametrize(
    "source",
    [
        "while True:\n    pass\n",
        # A job that ignores SIGXCPU is killed at the hard limit a second later.
        "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n",
    ],
    ids=["busy-loop", "ignores-sigxcpu"],
)
def test_b11_endless_loop_stopped(runner: BubblewrapRunner, tmp_path: Path, source: str) -> None:
    result = run(runner, tmp_path, source)

    assert result.failure == "CPU time limit of 2 s exceeded"
    assert_nothing_left(result)


def test_b11_job_that_never_ends_stopped_by_wall_clock(runner: BubblewrapRunner, tmp_path: Path) -> None:
    # The job sleeps (no CPU), starts a child, and a grandchild that leaves the session: all must go.
    result = run(
        runner,
        tmp_path,
        """
        import time
        if os.fork() == 0:
            if os.fork() == 0:
                os.setsid()
            time.sleep(600)
        time.sleep(600)
        """,
        SandboxLimits(cpu_seconds=10, wall_seconds=2, max_processes=32),
    )

    assert result.failure == "wall-clock limit of 2 s exceeded"
    assert_nothing_left(result)
