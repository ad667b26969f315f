"""B10: what approved custom code can read about its sandbox names no host folder of the gateway: not
the mount table (/proc/self/mountinfo), not the command line of the sandbox's first process
(/proc/1/cmdline, bubblewrap with every bind), not the unix sockets it is connected to
(/proc/net/unix); through a real gateway and the job's long-lived runtime. In a direct run, whose
binds are the caller's, the first process's command line (bubblewrap's, or the zygote's) still lists
none of them."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from custos.sandbox import Bind, BubblewrapRunner, SandboxLimits, SandboxRequest
from custos.sandbox.zygote import ZygoteRunner

LIMITS = SandboxLimits(cpu_seconds=10, wall_seconds=30, max_processes=32)

pytestmark = pytest.mark.integration


def what_the_sandbox_shows(dal: Any, datasets: list[str], params: dict[str, Any]) -> Any:
    shown = {}
    for path in ("/proc/self/mountinfo", "/proc/1/cmdline", "/proc/net/unix"):
        try:
            with open(path, "rb") as handle:
                shown[path] = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError as exc:
            shown[path] = type(exc).__name__
    shown["rows"] = str(dal.read(datasets[0], ["age"]).num_rows)
    return shown


def test_b10_the_sandbox_shows_no_host_path_of_its_binds(
    capped_cluster: Any, run_approved: Callable[..., str]
) -> None:
    job_id = run_approved(what_the_sandbox_shows)
    with capped_cluster.client("alice") as alice, capped_cluster.client("admin@hospital-a") as admin:
        assert alice.wait_job(job_id, timeout=180).state == "awaiting_release"
        held = next(r for r in admin.releases() if r.job_id == job_id)
        admin.approve_release(held.id, "mount table only")
        (shown,) = alice.code_result(job_id).values()

    assert int(shown.pop("rows")) > 0
    host_folders = [str(capped_cluster.work_dir), f"{tempfile.gettempdir()}/custos", "/dev/shm/"]
    for path, text in shown.items():
        assert not [folder for folder in host_folders if folder in text], (path, text)
    # bubblewrap's own command line (pid 1) lists none of its mounts, only the command it runs inside
    assert not re.search(r"--(ro-)?bind|--tmpfs|--dir ", shown["/proc/1/cmdline"]), shown["/proc/1/cmdline"]
    # /output is a filesystem of its own; /ipc shows its source only as a folder at the top of one
    mounts = [line.split() for line in shown["/proc/self/mountinfo"].splitlines()]
    roots = {fields[4]: PurePosixPath(fields[3]) for fields in mounts if fields[4] in ("/ipc", "/output")}
    assert roots["/output"] == PurePosixPath("/")
    assert roots["/ipc"].parent == PurePosixPath("/"), roots
    # the sockets the runtime is connected to were bound under names that carry no host folder
    bound = [line.split()[-1] for line in shown["/proc/net/unix"].splitlines()[1:] if len(line.split()) > 7]
    assert bound and all(name.startswith("/proc/self/fd/") for name in bound), bound


def test_b10_the_first_process_lists_no_bind_in_a_direct_run(
    sandbox_runner: BubblewrapRunner, tmp_path: Path
) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    task = tmp_path / "task-folder-on-the-host"
    task.mkdir(mode=0o755)
    output = tmp_path / "output"
    output.mkdir()
    source = "print(open('/proc/1/cmdline', 'rb').read().replace(b'\\0', b' ').decode())"

    result = sandbox_runner.run(
        SandboxRequest(argv=["-c", source], output_dir=output, binds=[Bind(task, "/task")], limits=LIMITS)
    )

    assert result.ok, result.stderr
    # pid 1 is bubblewrap, or the zygote's copy of itself (whose command line names the modules only)
    first = shutil.which("bwrap") or "bwrap"
    if isinstance(sandbox_runner, ZygoteRunner):
        first = f"{sandbox_runner.interpreter} -s -P -m custos.sandbox.zygote"
    assert result.stdout.startswith(first), result.stdout
    assert task.name not in result.stdout and "--bind" not in result.stdout, result.stdout
