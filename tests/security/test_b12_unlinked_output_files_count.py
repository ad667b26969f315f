"""B12: approved custom code cannot put more than its output quota on the gateway by writing files it
has already unlinked (they no longer show in a folder walk, but their bytes are still held). `/output`
is a filesystem of the quota's size, so every byte written counts, through a real gateway and the
job's long-lived runtime (and in a direct run)."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from custos.core.errors import Conflict
from custos.sandbox import BubblewrapRunner, SandboxExit, SandboxLimits, SandboxRequest

pytestmark = pytest.mark.integration


def holds_unlinked_files(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    import os

    held = []
    for i in range(params["files"]):
        path = f"/output/h{i}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.unlink(path)
        for _ in range(15):
            os.write(fd, b"x" * (1 << 20))
        held.append(fd)
    return {"held_mib": 15 * len(held)}


def test_b12_unlinked_output_files_count_against_the_quota(
    capped_cluster: Any, run_approved: Callable[..., str]
) -> None:
    job_id = run_approved(holds_unlinked_files, params={"files": 8})  # 120 MiB against a 16 MiB quota

    with capped_cluster.client("alice") as alice, pytest.raises(Conflict) as failed:
        alice.wait_job(job_id, timeout=180)

    assert "output limit of" in str(failed.value), failed.value


def test_b12_unlinked_files_count_in_a_direct_run(sandbox_runner: BubblewrapRunner, tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    source = textwrap.dedent(
        """
        import os
        held = []
        for i in range(3):
            fd = os.open(f"/output/h{i}", os.O_WRONLY | os.O_CREAT, 0o600)
            os.unlink(f"/output/h{i}")
            os.write(fd, b"x" * (1 << 20))
            held.append(fd)
        """
    )
    limits = SandboxLimits(cpu_seconds=10, wall_seconds=30, max_processes=32, output_bytes=1 << 20)

    result = sandbox_runner.run(SandboxRequest(argv=["-c", source], output_dir=tmp_path, limits=limits))

    assert result.failure == "output limit of 1 MiB exceeded"
    assert result.exit_code == SandboxExit.EXIT_OUTPUT
    assert list(tmp_path.iterdir()) == []
