"""Cgroups for sandboxed runs: one per run, holding every process of it, so that its memory, process
and CPU time limits hold for the whole run rather than for each process.

The unified hierarchy (cgroup v2) is used where its memory and pids controllers are available, the
per-controller hierarchies (cgroup v1) otherwise. A run's cgroups are made below the gateway's own.
Its first process joins them before it starts anything (`join_command`), so every process of the
run is counted from the start.

- memory: the run's limit for all of its processes together, page cache and tmpfs pages (`/tmp`,
  `/dev/shm`, `/output`) included, no swap. Under v1 the OOM killer is disabled for the run: a run at
  its limit stalls until the supervisor ends it, naming the limit. Under v2 the OOM killer ends the
  whole run at once (`memory.oom.group`).
- pids: the run's processes and threads together; a fork past the limit fails with EAGAIN, as under
  RLIMIT_NPROC.
- CPU time: the run's processes together (v1 cpuacct, v2 cpu.stat), read by the supervisor, which
  ends the run when it reaches the limit, and read once more after the run to name the limit.

`RunCgroups.probe()` returns None, with the reason, when this process cannot make cgroups (none
mounted, no permission, controllers not delegated); the runner then keeps to per-process limits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from custos.sandbox.limits import SandboxLimits

log = logging.getLogger("custos.sandbox")

SHELL = "/bin/sh"
_PREFIX = "custos-run"
# The run's cgroup also holds bubblewrap and its init, which are not the computation's.
_BUBBLEWRAP_PROCESSES = 2
_REMOVE_TIMEOUT_S = 1.0
_STALE_NAME = re.compile(rf"{_PREFIX}-(\d+)-[0-9a-f]+")
_REMOVE_PAUSE_S = 0.02


@dataclass(frozen=True)
class _Mount:
    root: str
    point: Path
    fstype: str
    options: frozenset[str]


def _mounts(mountinfo: str) -> list[_Mount]:
    mounts = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 10:
            continue
        dash = fields.index("-")
        mounts.append(
            _Mount(
                root=fields[3],
                point=Path(fields[4]),
                fstype=fields[dash + 1],
                options=frozenset(fields[dash + 3].split(",")),
            )
        )
    return mounts


def _own_folder(mount: _Mount, path: str) -> Path | None:
    """The folder of cgroup `path` (as /proc/self/cgroup names it) under `mount`, if visible there."""
    root = mount.root.rstrip("/")
    if path != root and not path.startswith(root + "/"):
        return None
    return mount.point / path[len(root) :].lstrip("/")


def _write(path: Path, value: str) -> None:
    path.write_text(value, encoding="ascii")


def _read_counts(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup file (`key value` per line) as numbers; missing keys and files read as 0."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except OSError:
        return {}
    counts = {}
    for line in lines:
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            counts[key] = int(value)
    return counts


class Leftovers:
    """Cgroups of ended runs that could not be removed yet. A cgroup v1 stays busy until its last
    process is reaped, and the sandbox's init, once bubblewrap has exited, is reaped by the host's
    init, which may take a while: each later run tries again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: list[Path] = []

    def add(self, folder: Path) -> None:
        with self._lock:
            self._folders.append(folder)

    def sweep(self) -> None:
        with self._lock:
            for folder in list(self._folders):
                try:
                    folder.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    continue
                self._folders.remove(folder)

    def __len__(self) -> int:
        with self._lock:
            return len(self._folders)


class RunCgroup:
    """The cgroups of one run. Make it with `RunCgroups.create`; `remove` it once the run is over."""

    def __init__(self, folders: dict[str, Path], unified: bool, leftovers: Leftovers) -> None:
        self._folders = folders
        self._unified = unified
        self._leftovers = leftovers

    @property
    def procs_files(self) -> list[Path]:
        return [folder / "cgroup.procs" for folder in dict.fromkeys(self._folders.values())]

    def join_command(self, command: list[str]) -> list[str]:
        """`command`, started through a shell that first moves itself into every cgroup of the run, so
        that the command and everything it starts are in them from their first instruction."""
        files = self.procs_files
        joins = " && ".join(f'echo 0 > "${index}"' for index in range(1, len(files) + 1))
        script = f'{joins} && shift {len(files)} && exec "$@"'
        return [SHELL, "-c", script, "sh", *(str(path) for path in files), *command]

    def add(self, pid: int) -> None:
        """Move process `pid` into every cgroup of the run (the zygote's runs join this way, before
        their computation starts). Raises OSError when it cannot be moved."""
        for procs in self.procs_files:
            _write(procs, str(pid))

    def memory_exhausted(self) -> bool:
        """Whether the run hit its memory limit: an OOM kill (v2), or a run stalled at the limit (v1)."""
        memory = self._folders["memory"]
        if self._unified:
            events = _read_counts(memory / "memory.events")
            return events.get("oom_kill", 0) > 0 or events.get("oom_group_kill", 0) > 0
        control = _read_counts(memory / "memory.oom_control")
        return control.get("under_oom", 0) > 0 or control.get("oom_kill", 0) > 0

    def cpu_seconds(self) -> float:
        """The CPU time (user and system) every process of the run has used so far, exited ones too."""
        if self._unified:
            return _read_counts(self._folders["cpu"] / "cpu.stat").get("usage_usec", 0) / 1e6
        try:
            return int((self._folders["cpu"] / "cpuacct.usage").read_text(encoding="ascii")) / 1e9
        except (OSError, ValueError):
            return 0.0

    def remove(self) -> None:
        """Kill anything still in the run's cgroups and remove them. Bounded: a cgroup still busy after
        a second (a process not reaped yet) is left to the leftovers, which later runs remove."""
        deadline = time.monotonic() + _REMOVE_TIMEOUT_S
        for folder in dict.fromkeys(self._folders.values()):
            while True:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        log.info("the run's cgroup %s is still busy; it is removed later", folder)
                        self._leftovers.add(folder)
                        break
                _kill_all(folder / "cgroup.procs")
                time.sleep(_REMOVE_PAUSE_S)
        self._leftovers.sweep()


def _members(procs: Path) -> set[int]:
    try:
        return {int(pid) for pid in procs.read_text(encoding="ascii").split()}
    except OSError:
        return set()


def _kill_all(procs: Path) -> None:
    """SIGKILL every process in a cgroup. The pidfd pins each process, and it is signalled only if it
    is still a member then, so a pid reused by another process is never hit."""
    for pid in _members(procs):
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if pid in _members(procs):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(pidfd)


@dataclass(frozen=True)
class RunCgroups:
    """Where this process makes its runs' cgroups: the parent folder for each role (memory, pids, cpu;
    one folder for all three under v2, one hierarchy each under v1)."""

    parents: dict[str, Path]
    unified: bool
    leftovers: Leftovers = field(default_factory=Leftovers, compare=False, repr=False)

    @classmethod
    def probe(cls) -> tuple[RunCgroups | None, str]:
        """The cgroups this process can make runs in, or None and the reason it cannot."""
        if not os.access(SHELL, os.X_OK):
            return None, f"{SHELL} is missing"
        try:
            own = Path("/proc/self/cgroup").read_text(encoding="ascii")
            mounts = _mounts(Path("/proc/self/mountinfo").read_text(encoding="utf-8"))
        except OSError as exc:
            return None, f"cannot read this process's cgroups ({exc})"
        paths = {}
        for line in own.splitlines():
            number, controllers, path = line.split(":", 2)
            paths[controllers if number != "0" else ""] = path
        found = cls._unified(mounts, paths.get(""))
        if found is None:
            found = cls._legacy(mounts, paths)
        if isinstance(found, str):
            return None, found
        found.sweep_stale()
        try:
            found.create(SandboxLimits()).remove()
        except OSError as exc:
            return None, f"a run's cgroup cannot be made below {found.parents['memory']} ({exc})"
        return found, f"cgroup {'v2' if found.unified else 'v1'} below {found.parents['memory']}"

    @classmethod
    def _unified(cls, mounts: list[_Mount], path: str | None) -> RunCgroups | str | None:
        """v2, when its memory and pids controllers are available to this process; None when they are
        not (look for v1), the reason when they are but cannot be delegated to its runs."""
        mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
        folder = None if mount is None or path is None else _own_folder(mount, path)
        if folder is None:
            return None
        try:
            available = set((folder / "cgroup.controllers").read_text(encoding="ascii").split())
        except OSError:
            return None
        if not {"memory", "pids"} <= available:
            return None
        try:
            enabled = set((folder / "cgroup.subtree_control").read_text(encoding="ascii").split())
            if not {"memory", "pids"} <= enabled:
                cls._delegate(folder)
        except OSError as exc:
            return f"memory and pids cannot be enabled below {folder} ({exc})"
        return cls({"memory": folder, "pids": folder, "cpu": folder}, unified=True)

    @staticmethod
    def _delegate(folder: Path) -> None:
        """Enable memory and pids for the cgroups below `folder`: a cgroup v2 with processes cannot
        have them, so this process first moves into a leaf of its own. Undone when that fails (another
        process still in `folder`)."""
        leaf = folder / f"{_PREFIX}-gateway-{os.getpid()}"
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", "0")
        try:
            _write(folder / "cgroup.subtree_control", "+memory +pids")
        except OSError:
            _write(folder / "cgroup.procs", "0")
            leaf.rmdir()
            raise

    @classmethod
    def _legacy(cls, mounts: list[_Mount], paths: dict[str, str]) -> RunCgroups | str:
        parents = {}
        for role, controller in (("memory", "memory"), ("pids", "pids"), ("cpu", "cpuacct")):
            mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
            path = next((p for names, p in paths.items() if controller in names.split(",")), None)
            folder = None if mount is None or path is None else _own_folder(mount, path)
            if folder is None or not folder.is_dir():
                return f"no cgroup {controller} controller is mounted for this process"
            parents[role] = folder
        return cls(parents, unified=False)

    def sweep_stale(self) -> None:
        """Remove the run cgroups a gateway that is gone left behind (it was killed while a run went):
        those named for a process that no longer exists, and empty (rmdir refuses any other)."""
        for parent in dict.fromkeys(self.parents.values()):
            try:
                names = [entry.name for entry in os.scandir(parent) if entry.is_dir(follow_symlinks=False)]
            except OSError:
                continue
            for name in names:
                owner = _STALE_NAME.fullmatch(name)
                if owner is not None and not Path(f"/proc/{owner.group(1)}").exists():
                    with contextlib.suppress(OSError):
                        (parent / name).rmdir()

    def create(self, limits: SandboxLimits) -> RunCgroup:
        """Cgroups for one run, with its limits set. Raises OSError when they cannot be made."""
        name = f"{_PREFIX}-{os.getpid()}-{secrets.token_hex(4)}"
        folders: dict[str, Path] = {}
        cgroup = RunCgroup(folders, self.unified, self.leftovers)
        self.leftovers.sweep()
        try:
            for role, parent in self.parents.items():
                folder = parent / name
                if folder not in folders.values():
                    folder.mkdir(mode=0o700)
                folders[role] = folder
            self._limit(folders, limits)
        except BaseException:
            cgroup.remove()
            raise
        return cgroup

    def _limit(self, folders: dict[str, Path], limits: SandboxLimits) -> None:
        memory, pids = folders["memory"], folders["pids"]
        _write(pids / "pids.max", str(limits.max_processes + _BUBBLEWRAP_PROCESSES))
        if self.unified:
            _write(memory / "memory.max", str(limits.memory_bytes))
            if (memory / "memory.swap.max").exists():
                _write(memory / "memory.swap.max", "0")
            _write(memory / "memory.oom.group", "1")
            return
        _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():
            _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        # Where the kernel refuses, the OOM killer stays on: a kill is then seen in oom_kill.
        with contextlib.suppress(OSError):
            _write(memory / "memory.oom_control", "1")
