"""B11: approved custom code that outruns its CPU time, through a real gateway and the job's long-lived
runtime, fails naming the CPU limit: when it ignores SIGXCPU (the kernel then kills it at the hard
limit), and when its CPU time is spread over several processes (the limit is for the whole run, also
in a direct run)."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from custos.core.errors import Conflict
from custos.sandbox import BubblewrapRunner, SandboxLimits, SandboxRequest

pytestmark = pytest.mark.integration


def ignores_sigxcpu(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    import signal

    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    while True:
        pass


def spins_in_children(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    import subprocess
    import sys

    # Each child alone stays under the limit for a while; together they pass it twice as fast.
    spin = "import time\nend = time.process_time() + 9\nwhile time.process_time() < end: pass"
    children = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    return {"exit_codes": [child.wait() for child in children]}


def test_b11_a_cpu_limit_kill_is_named_in_the_long_lived_runtime(
    capped_cluster: Any, run_approved: Callable[..., str]
) -> None:
    job_id = run_approved(ignores_sigxcpu)

    with capped_cluster.client("alice") as alice, pytest.raises(Conflict) as failed:
        alice.wait_job(job_id, timeout=180)

    assert "CPU time limit of" in str(failed.value), failed.value
    assert "SIGKILL" not in str(failed.value)


def test_b11_cpu_time_counts_for_every_process_of_the_run(
    capped_cluster: Any, run_approved: Callable[..., str]
) -> None:
    job_id = run_approved(spins_in_children)

    with capped_cluster.client("alice") as alice, pytest.raises(Conflict) as failed:
        alice.wait_job(job_id, timeout=180)

    assert "CPU time limit of" in str(failed.value), failed.value


def test_b11_cpu_time_counts_for_every_process_of_a_direct_run(
    sandbox_runner: BubblewrapRunner, tmp_path: Path
) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    runner = sandbox_runner
    assert runner.whole_run_limits, "this machine has writable cgroups: the runner must use them"
    source = textwrap.dedent(
        """
        import subprocess, sys
        spin = "import time\\nend = time.process_time() + 1.5\\nwhile time.process_time() < end: pass"
        children = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(3)]
        print([child.wait() for child in children])
        """
    )
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=60, max_processes=32)

    result = runner.run(SandboxRequest(argv=["-c", source], output_dir=tmp_path, limits=limits))

    assert result.failure == "CPU time limit of 2 s exceeded", (result.stdout, result.stderr)
