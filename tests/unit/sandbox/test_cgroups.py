"""A run's cgroups: made below the gateway's own, with the run's limits, joined by the run's first
process before it starts anything, and removed with anything left in them. Real cgroups: the tests
that make one skip where this process cannot."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from custos.sandbox.cgroups import RunCgroup, RunCgroups, _mounts, _own_folder
from custos.sandbox.limits import SandboxLimits

LIMITS = SandboxLimits(memory_bytes=256 << 20, max_processes=10)

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 /gateway.slice /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
"""


def test_mounts_and_own_folders_are_read_from_mountinfo() -> None:
    mounts = {mount.point.name: mount for mount in _mounts(MOUNTINFO)}

    assert mounts["memory"].fstype == "cgroup" and "memory" in mounts["memory"].options
    assert {"cpu", "cpuacct"} <= mounts["cpu,cpuacct"].options
    unified = mounts["unified"]
    assert (unified.fstype, unified.root) == ("cgroup2", "/gateway.slice")
    # A cgroup path is relative to the hierarchy's root; the mount may show only a part of it.
    assert _own_folder(unified, "/gateway.slice/custos.service") == Path(
        "/sys/fs/cgroup/unified/custos.service"
    )
    assert _own_folder(unified, "/gateway.slice") == Path("/sys/fs/cgroup/unified")
    assert _own_folder(unified, "/other.slice/x") is None
    assert _own_folder(mounts["memory"], "/") == Path("/sys/fs/cgroup/memory")


@pytest.fixture(scope="module")
def cgroups() -> RunCgroups:
    found, how = RunCgroups.probe()
    if found is None:
        pytest.skip(f"this process cannot make cgroups: {how}")
    return found


@pytest.fixture
def cgroup(cgroups: RunCgroups) -> Iterator[RunCgroup]:
    made = cgroups.create(LIMITS)
    try:
        yield made
    finally:
        made.remove()


def test_a_run_cgroup_carries_the_runs_limits(cgroups: RunCgroups, cgroup: RunCgroup) -> None:
    folders = {path.parent for path in cgroup.procs_files}
    memory = next(f for f in folders if (f / "memory.max").exists() or (f / "memory.limit_in_bytes").exists())
    pids = next(f for f in folders if (f / "pids.max").exists())

    limit = memory / ("memory.max" if cgroups.unified else "memory.limit_in_bytes")
    assert int(limit.read_text()) == LIMITS.memory_bytes
    assert int((pids / "pids.max").read_text()) == LIMITS.max_processes + 2  # and bubblewrap's two
    assert not cgroup.memory_exhausted()


def test_the_first_process_joins_before_it_runs_and_removal_ends_what_is_left(cgroup: RunCgroup) -> None:
    folders = [path.parent for path in cgroup.procs_files]
    shown = subprocess.run(
        cgroup.join_command(["cat", "/proc/self/cgroup"]),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert all(folder.name in shown.stdout for folder in folders), shown.stdout

    left = subprocess.Popen(cgroup.join_command(["sleep", "600"]))
    deadline = time.monotonic() + 10
    while str(left.pid) not in cgroup.procs_files[0].read_text() and time.monotonic() < deadline:
        time.sleep(0.02)

    cgroup.remove()

    assert left.wait(timeout=10) == -9
    assert not any(folder.exists() for folder in folders)


def test_the_memory_of_every_process_counts_against_the_run(cgroup: RunCgroup) -> None:
    hog = "import time\nblocks = [bytearray(64 << 20) for _ in range(8)]\ntime.sleep(600)"
    child = subprocess.Popen(cgroup.join_command(["python3", "-c", hog]))
    try:
        deadline = time.monotonic() + 30
        while not cgroup.memory_exhausted() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cgroup.memory_exhausted()  # 512 MiB asked for under a limit of 256 MiB
    finally:
        child.kill()
        child.wait(timeout=10)


def test_the_cpu_time_of_every_process_counts_also_once_it_has_exited(cgroup: RunCgroup) -> None:
    spin = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    for _ in range(2):
        subprocess.run(cgroup.join_command(["python3", "-c", spin]), check=True, timeout=60)

    assert cgroup.cpu_seconds() >= 0.6


def test_a_cgroup_that_cannot_be_removed_yet_is_removed_by_a_later_run(cgroups: RunCgroups) -> None:
    cgroup = cgroups.create(LIMITS)
    folders = [path.parent for path in cgroup.procs_files]
    inner = folders[0] / "inner"
    inner.mkdir()  # keeps the cgroup busy, as a process the host's init has not reaped yet does

    cgroup.remove()

    assert folders[0].exists() and len(cgroups.leftovers) == 1
    inner.rmdir()
    cgroups.create(LIMITS).remove()  # the next run
    assert not any(folder.exists() for folder in folders)
    assert len(cgroups.leftovers) == 0


def test_cgroups_a_gateway_that_is_gone_left_behind_are_swept(cgroups: RunCgroups) -> None:
    parent = cgroups.parents["pids"]
    gone = parent / "custos-run-4194305-0badcafe"  # above any pid the kernel hands out
    live = parent / f"custos-run-{os.getpid()}-0badcafe"
    for folder in (gone, live):
        folder.mkdir()
    try:
        cgroups.sweep_stale()

        assert not gone.exists()
        assert live.exists()  # its gateway still runs: its runs are its own to remove
    finally:
        for folder in (gone, live):
            with contextlib.suppress(FileNotFoundError):
                folder.rmdir()
