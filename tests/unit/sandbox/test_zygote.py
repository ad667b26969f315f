"""The zygote's life: started by the first run, started again after it died, gone once the runner is
closed; a run whose zygote is killed ends with every process of it."""

from __future__ import annotations

import os
import shutil
import signal
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from custos.sandbox import SandboxLimits, SandboxRequest, SandboxResult
from custos.sandbox.zygote import ZygoteRunner
from custos.testing.processes import processes_with

LIMITS = SandboxLimits(cpu_seconds=20, wall_seconds=60, max_processes=16)


@pytest.fixture
def zygote_runner() -> Iterator[ZygoteRunner]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    if os.geteuid() != 0:
        pytest.skip("the zygote runner needs root")
    runner = ZygoteRunner()
    try:
        yield runner
    finally:
        runner.close()


def run(runner: ZygoteRunner, tmp_path: Path, source: str) -> SandboxResult:
    output = Path(os.path.join(tmp_path, f"output-{time.monotonic_ns()}"))
    output.mkdir()
    return runner.run(SandboxRequest(argv=["-c", source], output_dir=output, limits=LIMITS))


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_dead_zygote_is_started_again_by_the_next_run(zygote_runner: ZygoteRunner, tmp_path: Path) -> None:
    assert zygote_runner.zygote_pid is None  # nothing starts before the first run
    assert run(zygote_runner, tmp_path, "print('first')").stdout == "first\n"
    first = zygote_runner.zygote_pid
    assert first is not None
    os.killpg(first, signal.SIGKILL)

    again = run(zygote_runner, tmp_path, "print('second')")

    assert again.ok and again.stdout == "second\n", again.stderr
    assert zygote_runner.zygote_pid not in (None, first)


def test_closing_the_runner_leaves_no_zygote(zygote_runner: ZygoteRunner, tmp_path: Path) -> None:
    assert run(zygote_runner, tmp_path, "pass").ok
    pgid = zygote_runner.zygote_pid
    assert pgid is not None and group_alive(pgid)

    zygote_runner.close()

    assert zygote_runner.zygote_pid is None
    assert not group_alive(pgid)


def test_a_run_ends_with_its_killed_zygote(zygote_runner: ZygoteRunner, tmp_path: Path) -> None:
    marker = f"custos-zygote-test-{os.getpid()}-{time.monotonic_ns()}"
    source = textwrap.dedent(
        f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "{marker}"])
        print("up", flush=True)
        time.sleep(300)
        """
    )
    results: list[SandboxResult] = []
    worker = threading.Thread(target=lambda: results.append(run(zygote_runner, tmp_path, source)))
    worker.start()
    for _ in range(600):
        if processes_with(marker):
            break
        time.sleep(0.05)
    assert processes_with(marker), "the run never started its child"
    pgid = zygote_runner.zygote_pid
    assert pgid is not None

    os.killpg(pgid, signal.SIGKILL)
    worker.join(timeout=60)

    assert not worker.is_alive()
    assert not results[0].ok
    assert processes_with(marker) == []
