"""BubblewrapRunner: the Runner that isolates a computation with bubblewrap (bwrap).

Two modes, chosen by who runs the gateway:

- root (production): bubblewrap runs privileged and creates no user namespace (a user namespace would
  map the sandbox to host root, whose process limit the kernel does not enforce). Inside, `setpriv`
  switches to a fresh unprivileged uid for the run, clears groups, capabilities and the bounding set,
  and sets no_new_privs before Python starts.
- not root: bubblewrap runs unprivileged in a new user namespace under the gateway's own uid. The
  process limit then counts every process of that uid, the gateway's own included.

Where the gateway can make cgroups (`sandbox/cgroups.py`), each run gets its own, so that its memory,
process and CPU time limits hold for the whole run; elsewhere they hold for each process (rlimits),
and the runner says so once, when it is made.

In both, the sandbox has its own (empty) network, pid, ipc and uts namespaces, a read-only system and
interpreter, a private size-limited /tmp, the request's binds, a size-limited /output whose contents
are copied to the request's output folder after the run, a seccomp filter, and a cleaned environment;
the in-sandbox bootstrap applies the resource limits before the computation runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from custos.core.errors import InvalidInput, SandboxError
from custos.sandbox.cgroups import RunCgroup, RunCgroups
from custos.sandbox.interpreter import Interpreter, is_within
from custos.sandbox.limits import LIMITS_VARIABLE, STARTED_FD_VARIABLE, SandboxExit, SandboxLimits
from custos.sandbox.output import OutputFolder, measure
from custos.sandbox.runner import STOPPED, SandboxRequest, SandboxResult
from custos.sandbox.seccomp import seccomp_program
from custos.sandbox.supervisor import Supervised, Supervisor
from custos.sandbox.users import SandboxUsers

log = logging.getLogger("custos.sandbox")

SETPRIV = "/usr/bin/setpriv"
OUTPUT_TARGET = "/output"
# The sandbox's own private tmpfs mounts, not the host's.
SANDBOX_TMP = "/tmp"  # noqa: S108
SANDBOX_SHM = "/dev/shm"  # noqa: S108
# Mount points the sandbox's own layout uses; a bind may not replace or sit inside them.
RESERVED_TARGETS = (
    "/usr",
    "/bin",
    "/lib",
    "/lib64",
    "/sbin",
    "/etc",
    "/proc",
    "/dev",
    SANDBOX_TMP,
    OUTPUT_TARGET,
)
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_MERGED_USR_LINKS = ("/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin")

# Numeric libraries start one thread per core unless told otherwise; threads count against the
# process limit, and a sandboxed computation gets its parallelism from the federation, not from cores.
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "ARROW_IO_THREADS",
    "RAYON_NUM_THREADS",
    "POLARS_MAX_THREADS",
)


def _ancestors(path: str) -> Iterator[str]:
    parents = list(PurePosixPath(path).parents)[:-1]  # without "/"
    for parent in reversed(parents):
        yield str(parent)


def _is_normal_absolute(target: str) -> bool:
    path = PurePosixPath(target)
    return path.is_absolute() and os.path.normpath(target) == target and ".." not in path.parts


def _others_may(path: Path, writable: bool) -> bool:
    """Whether a uid that is neither owner nor group of `path` may use it as a bind source."""
    mode = path.stat().st_mode
    needed = stat.S_IROTH
    if stat.S_ISDIR(mode):
        needed |= stat.S_IXOTH
    if writable or stat.S_ISSOCK(mode):
        needed |= stat.S_IWOTH
    return mode & needed == needed


class BubblewrapRunner:
    """Runs each SandboxRequest in a fresh bubblewrap sandbox. Safe to share between threads."""

    def __init__(self, *, python: Path | None = None, bwrap: str = "bwrap") -> None:
        found = shutil.which(bwrap)
        if found is None:
            raise SandboxError("bubblewrap (bwrap) is not installed; install the Debian package bubblewrap")
        self._bwrap = found
        self._privileged = os.geteuid() == 0
        if self._privileged and not os.access(SETPRIV, os.X_OK):
            raise SandboxError("setpriv is not installed; install the Debian package util-linux")
        executable = python or Path(sys.executable)
        if not str(executable):
            raise SandboxError("no Python interpreter was given for the sandbox and sys.executable is empty")
        self._interpreter = Interpreter.probe(executable)
        self._seccomp = seccomp_program()
        self._users = SandboxUsers()
        self._cgroups, how = RunCgroups.probe()
        if self._cgroups is None:
            log.warning(
                "sandboxed runs get per-process limits only, not limits for each run as a whole: %s; "
                "memory, processes and CPU time then count for each process of a run separately",
                how,
            )
        else:
            log.info("each sandboxed run is limited as a whole: %s", how)

    @property
    def whole_run_limits(self) -> bool:
        """True when memory, processes and CPU time are limited for each run as a whole (cgroups)."""
        return self._cgroups is not None

    @property
    def privileged(self) -> bool:
        """True when each run gets its own uid (the gateway runs as root)."""
        return self._privileged

    def run(self, request: SandboxRequest) -> SandboxResult:
        self._check(request)
        cgroup = self._make_cgroup(request.limits)
        try:
            uid = self._users.allocate() if self._privileged else None
            try:
                supervised = self._start(request, uid, cgroup)
            finally:
                if uid is not None:
                    self._users.end_processes(uid)
                    self._users.release(uid)
            try:
                output_breach = self._collect(supervised, OutputFolder(request.output_dir, request.limits))
            finally:
                if supervised.output_fd is not None:
                    os.close(supervised.output_fd)
            memory_breach = cgroup is not None and cgroup.memory_exhausted()
            cpu_s = supervised.cpu_s if cgroup is None else max(supervised.cpu_s, cgroup.cpu_seconds())
        finally:
            if cgroup is not None:
                cgroup.remove()
        if not supervised.started and supervised.stopped_for is None:
            raise SandboxError(
                f"the sandbox could not start (exit code {supervised.exit_code}): "
                f"{supervised.stderr.strip()[-2000:] or 'no message'}"
            )
        failure, limit = _failure(supervised, request.limits, output_breach, memory_breach, cpu_s)
        return SandboxResult(
            exit_code=supervised.exit_code,
            stdout=supervised.stdout,
            stderr=supervised.stderr,
            duration_s=supervised.duration_s,
            failure=failure,
            limit=limit,
        )

    def _make_cgroup(self, limits: SandboxLimits) -> RunCgroup | None:
        if self._cgroups is None:
            return None
        try:
            return self._cgroups.create(limits)
        except OSError as exc:
            raise SandboxError(f"the run's cgroup could not be made: {exc}") from exc

    @staticmethod
    def _collect(supervised: Supervised, output: OutputFolder) -> str | None:
        """Copy the run's /output into the output folder, unless it broke a limit; returns the breach.
        Every process of the run is gone by now, so nothing changes the tmpfs while it is copied."""
        if supervised.output_fd is None:
            return None
        breach = measure(supervised.output_fd, output.limits).breach(output.limits)
        if breach is None and supervised.exit_code != SandboxExit.EXIT_OUTPUT:
            breach = output.receive(supervised.output_fd).breach(output.limits)
            if breach is None:
                return None
        # Output that broke a limit is never half-used: the run leaves an empty folder.
        output.clear()
        return breach

    # --- request checks ----------------------------------------------------------------------------

    def _check(self, request: SandboxRequest) -> None:
        if not request.argv:
            raise InvalidInput("sandbox argv is empty; give e.g. ['-m', 'package.module', ...]")
        if any("\0" in argument for argument in request.argv):
            raise InvalidInput("sandbox argv may not contain a NUL character")
        output = request.output_dir
        if output.is_symlink() or not output.is_dir():
            raise InvalidInput(f"sandbox output folder {output} does not exist or is not a folder")
        if LIMITS_VARIABLE in request.env or STARTED_FD_VARIABLE in request.env:
            raise InvalidInput(f"sandbox env may not set {LIMITS_VARIABLE} or {STARTED_FD_VARIABLE}")
        taken = [*RESERVED_TARGETS, *self._interpreter.read_only]
        for bind in request.binds:
            if not _is_normal_absolute(bind.target):
                raise InvalidInput(f"bind target {bind.target!r} must be a normalised absolute path")
            for other in taken:
                if is_within(bind.target, other) or is_within(other, bind.target):
                    raise InvalidInput(
                        f"bind target {bind.target} overlaps {other}, which the sandbox already uses; "
                        "choose a new top-level folder such as /task"
                    )
            taken.append(bind.target)
            if not bind.host.exists():
                raise InvalidInput(f"bind source {bind.host} does not exist")
            if self._privileged and not _others_may(bind.host, bind.writable):
                raise InvalidInput(
                    f"bind source {bind.host} is not accessible to the sandbox user; give others "
                    "read (and search for folders, write for sockets and writable binds) and keep it "
                    "inside a folder only the gateway can enter"
                )

    # --- starting ----------------------------------------------------------------------------------

    def _environment(self, request: SandboxRequest, started_fd: int) -> dict[str, str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": SANDBOX_TMP,
            "TMPDIR": SANDBOX_TMP,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "USER": "custos",
            "LOGNAME": "custos",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            **dict.fromkeys(_THREAD_VARIABLES, "1"),
        }
        if self._interpreter.library_dir:
            env["LD_LIBRARY_PATH"] = self._interpreter.library_dir
        if self._interpreter.python_path:
            env["PYTHONPATH"] = self._interpreter.python_path
        env.update(request.env)
        env[LIMITS_VARIABLE] = request.limits.to_json()
        env[STARTED_FD_VARIABLE] = str(started_fd)
        return env

    def _arguments(self, request: SandboxRequest, uid: int | None, fds: dict[str, int]) -> list[str]:
        args = [self._bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--hostname", "sandbox"]
        if uid is None:
            args += ["--unshare-user", "--disable-userns"]
        args += ["--ro-bind", "/usr", "/usr"]
        for link in _MERGED_USR_LINKS:
            if os.path.islink(link):
                args += ["--symlink", os.readlink(link), link]
            elif os.path.isdir(link):
                args += ["--ro-bind", link, link]
        args += ["--dir", "/etc", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        for scratch in (SANDBOX_TMP, SANDBOX_SHM):
            args += ["--perms", "1777", "--size", str(request.limits.tmp_bytes), "--tmpfs", scratch]
        targets = [*self._interpreter.read_only, *(bind.target for bind in request.binds)]
        made: set[str] = {"/etc"}
        for target in targets:
            for parent in _ancestors(target):
                if parent not in made and not is_within(parent, "/usr"):
                    made.add(parent)
                    args += ["--dir", parent]
        for path in self._interpreter.read_only:
            args += ["--ro-bind", path, path]
        for bind in request.binds:
            args += ["--bind" if bind.writable else "--ro-bind", str(bind.host), bind.target]
        # Every byte written to /output counts against its size, also that of a file already unlinked.
        args += ["--perms", "1777", "--size", str(_output_space(request.limits)), "--tmpfs", OUTPUT_TARGET]
        args += ["--remount-ro", "/", "--chdir", SANDBOX_TMP]
        args += ["--seccomp", str(fds["seccomp"]), "--info-fd", str(fds["info"]), "--"]
        if uid is not None:
            args += [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            args += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        args += [str(self._interpreter.executable), "-s", "-P", "-m", "custos.sandbox.bootstrap"]
        return [*args, *request.argv]

    def _start(self, request: SandboxRequest, uid: int | None, cgroup: RunCgroup | None) -> Supervised:
        seccomp_read, seccomp_write = os.pipe()
        try:
            # The filter is a few hundred bytes: it fits in the pipe buffer, so this never blocks.
            os.write(seccomp_write, self._seccomp)
        finally:
            os.close(seccomp_write)
        info_read, info_write = os.pipe()
        started, started_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        arguments = os.memfd_create("bwrap-arguments", os.MFD_CLOEXEC)
        theirs = [seccomp_read, info_write, started_theirs.fileno(), arguments]
        bwrap, *options = self._arguments(request, uid, {"seccomp": seccomp_read, "info": info_write})
        inside = options[options.index("--") :]
        # bubblewrap reads its options from a file, so that its command line, which every process in the
        # sandbox can read as /proc/1/cmdline, shows none of them (no host path of a bind): only the
        # command it runs inside.
        os.write(arguments, b"".join(os.fsencode(option) + b"\0" for option in options[: -len(inside)]))
        os.lseek(arguments, 0, os.SEEK_SET)
        command = [bwrap, "--args", str(arguments), *inside]
        try:
            process = subprocess.Popen(
                command if cgroup is None else cgroup.join_command(command),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._environment(request, started_theirs.fileno()),
                pass_fds=theirs,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(info_read)
            started.close()
            raise SandboxError(f"bubblewrap could not be started: {exc}") from exc
        finally:
            os.close(seccomp_read)
            os.close(info_write)
            os.close(arguments)
            started_theirs.close()
        limits = request.limits
        supervisor = Supervisor(
            process,
            info_fd=info_read,
            started=started,
            wall_seconds=limits.wall_seconds,
            wall_breach=limits.wall_breach(),
            check=breach_check(request, cgroup),
        )
        return supervisor.supervise()


def breach_check(request: SandboxRequest, cgroup: RunCgroup | None) -> Callable[[int | None], str | None]:
    """What the supervisor asks while a run goes on: the limit it broke so far (or STOPPED when the
    gateway stopped it), given a descriptor of its /output, or None while it keeps to them."""
    limits = request.limits

    def check(output: int | None) -> str | None:
        if request.stop is not None and request.stop.is_set():
            return STOPPED
        if cgroup is not None and cgroup.memory_exhausted():
            return limits.memory_breach()
        if cgroup is not None and cgroup.cpu_seconds() >= limits.cpu_seconds:
            return limits.cpu_breach()
        return None if output is None else measure(output, limits).breach(limits)

    return check


def _output_space(limits: SandboxLimits) -> int:
    """The size of the /output tmpfs: the output limit, plus a page for each file it may hold (a file
    takes whole pages). The exact byte count is checked when the output is copied out."""
    return limits.output_bytes + (limits.output_files + 1) * _PAGE_BYTES


def _failure(
    supervised: Supervised,
    limits: SandboxLimits,
    output_breach: str | None,
    memory_breach: bool,
    cpu_s: float,
) -> tuple[str | None, bool]:
    """The one sentence that says why a run failed, most specific first, and whether it names a
    broken limit. `cpu_s` is the CPU time the run used: all of its processes' (cgroup), or the most
    its main process was seen to use."""
    if supervised.stopped_for is not None:
        return supervised.stopped_for, True
    if memory_breach:
        return limits.memory_breach(), True
    code = supervised.exit_code
    if code in {member.value for member in SandboxExit}:
        return limits.describe_breach(SandboxExit(code)), True
    signal_number = code - 128 if 128 < code < 128 + signal.NSIG else -code if code < 0 else 0
    if signal_number == signal.SIGXCPU or (signal_number == signal.SIGKILL and cpu_s >= limits.cpu_seconds):
        return limits.cpu_breach(), True
    if output_breach is not None:
        return output_breach, True
    if signal_number:
        return f"killed by signal {_signal_name(signal_number)}", False
    if code != 0:
        return f"exited with code {code}", False
    return None, False


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
