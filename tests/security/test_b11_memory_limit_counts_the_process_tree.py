"""B11: the memory limit holds for the whole run, not for each process: approved custom code whose
children together hold more than the limit (each of them well under it) fails naming the memory
limit, through a real gateway and the job's long-lived runtime (and in a direct run)."""

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


def children_hold_memory(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    import subprocess
    import sys

    hold = f"import time\nblock = bytearray({params['mib']} << 20)\nprint('held', flush=True)\ntime.sleep(60)"
    children = [
        subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE)
        for _ in range(params["children"])
    ]
    try:
        held = [child.stdout.readline() == b"held\n" for child in children if child.stdout is not None]
    finally:
        for child in children:
            child.kill()
            child.wait()
    return {"held": sum(held)}


def test_b11_children_together_cannot_hold_more_than_the_memory_limit(
    capped_cluster: Any, run_approved: Callable[..., str]
) -> None:
    # Three children of 600 MiB each: 1.8 GiB in all, under a limit of 1.5 GiB (gateway.yaml).
    job_id = run_approved(children_hold_memory, params={"children": 3, "mib": 600})

    with capped_cluster.client("alice") as alice, pytest.raises(Conflict) as failed:
        alice.wait_job(job_id, timeout=180)

    assert "memory limit of" in str(failed.value), failed.value


def test_b11_children_together_cannot_hold_more_than_the_memory_limit_in_a_direct_run(
    sandbox_runner: BubblewrapRunner, tmp_path: Path
) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    runner = sandbox_runner
    assert runner.whole_run_limits, "this machine has writable cgroups: the runner must use them"
    source = textwrap.dedent(
        """
        import os, time
        for _ in range(3):
            if os.fork() == 0:
                block = bytearray(200 << 20)
                time.sleep(60)
        time.sleep(60)
        """
    )
    limits = SandboxLimits(cpu_seconds=20, wall_seconds=40, max_processes=32, memory_bytes=512 << 20)

    result = runner.run(SandboxRequest(argv=["-c", source], output_dir=tmp_path, limits=limits))

    assert result.failure == "memory limit of 512 MiB exceeded"
