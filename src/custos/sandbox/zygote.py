"""ZygoteRunner: the Runner that forks each run from a long-lived, pre-imported Python (the zygote)
instead of starting bubblewrap and an interpreter per run, so a small job pays a few forks and mounts
rather than an interpreter start and its imports. Root only (production and CI); elsewhere gateways
use BubblewrapRunner. See docs/sandbox.md, "The zygote".

The zygote is started once per gateway with bubblewrap as root, without seccomp or setpriv, keeping
only the capabilities it needs to set up its children (`ZYGOTE_CAPABILITIES`). It sees what every run
sees from the host and no more: /usr, the interpreter's folders (read-only), its own /proc, /dev and
/tmp; no host folder is bound into it. It imports what a job's first round needs (the modules the
gateway names, e.g. custos.computations.runtime, and OpenDP with `warm`), then reads run requests on
a control socket that only the gateway holds. It runs only the gateway's code and reads only the
gateway's messages.

Per run the gateway sends the request (a JSON memfd) and descriptors over SCM_RIGHTS: the
stdout/stderr pipes, the "started" socket, a status socket, and each bind as a detached mount the
gateway cloned (open_tree), so that no host folder is ever a path in the zygote's mount namespace.
The zygote forks C, which unshares pid, network, ipc and uts namespaces and forks G, pid 1 of the new
pid namespace, then reports G's exit status on the status socket. G:

1. says hello on the status socket; the gateway learns G's host pid from the kernel (SO_PASSCRED),
   takes a pidfd of it and moves it into the run's cgroups, then sends a go byte;
2. unshares its mount and cgroup namespaces (its own mount namespace, not C's: pivot_root moves every
   process of a namespace), and builds the run's filesystem on a fresh tmpfs: /usr, the merged
   /bin-style links, /etc/ld.so.cache and the interpreter's folders (read-only), a fresh /proc, a
   /dev of its own (null, zero, full, random, urandom, tty, a new devpts and a /dev/shm tmpfs), /tmp
   and /dev/shm tmpfs of `tmp_bytes` each, the request's binds (read-only unless writable), /output as
   bubblewrap's runner sizes it; pivots into it and makes / read-only; sets the hostname and brings
   up the loopback interface;
3. drops the bounding set and ambient capabilities, sets no_new_privs and installs the seccomp filter
   (sandbox/seccomp.py), forks P, clears its own capabilities and stays as the namespace's init,
   reaping, until P ends; it exits with P's code (128+N when P died of signal N), as bubblewrap does.

P clears its groups, takes the run's uid (which clears its capabilities), clears its inheritable
ones, closes every descriptor but stdin, stdout, stderr and the started socket, takes the cleaned
environment bubblewrap's runner would give, reseeds what a fork would share (numpy's global random
state; Python's random module reseeds itself), and runs `custos.sandbox.bootstrap.main` in-process:
limits, started signal with its /output, then the target, reusing the modules already imported.
Nothing a run changes reaches the zygote or another run: each is a fresh fork of the zygote's memory,
with its own namespaces, filesystems and uid.

If the zygote dies, the next run starts a new one. Closing the control socket (the gateway closed the
runner, or died) ends the zygote, and so does the end of its bubblewrap (--die-with-parent, started
from a thread that lives as long as the zygote); its pid namespace then ends every run still going.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import platform
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from custos.core.errors import SandboxError
from custos.sandbox.bubblewrap import (
    _MERGED_USR_LINKS,
    OUTPUT_TARGET,
    SANDBOX_SHM,
    SANDBOX_TMP,
    BubblewrapRunner,
    _ancestors,
    _output_space,
    breach_check,
)
from custos.sandbox.cgroups import RunCgroup
from custos.sandbox.interpreter import is_within
from custos.sandbox.limits import STARTED_FD_VARIABLE
from custos.sandbox.runner import SandboxRequest
from custos.sandbox.seccomp import seccomp_program
from custos.sandbox.supervisor import Supervised, Supervisor

log = logging.getLogger("custos.sandbox")

# What the zygote keeps to set up a child: namespaces, mounts and pivot_root (SYS_ADMIN), the run's
# uid (SETUID, SETGID), dropping the bounding set (SETPCAP), the child's loopback up (NET_ADMIN).
ZYGOTE_CAPABILITIES = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_NET_ADMIN")
# The started socket's number in the run, as the bootstrap finds it in its environment.
STARTED_FD = 3
HOSTNAME = "sandbox"
RUN_ROOT = "/.custos-run"  # where the zygote lays out each run's root before pivoting into it
# How long the gateway waits for a forked run to say hello: the zygote may still be importing.
HELLO_TIMEOUT_S = 120.0
_END_WAIT_S = 5.0
_CLOSE_WAIT_S = 5.0
_MAX_FDS = 64
# Exit code of a run whose sandbox could not be set up (a mount failed...): what went wrong is on its
# stderr, and the runner reports that the sandbox could not start.
_SETUP_FAILED = 125

_CLONE_NEWNS = 0x00020000
_CLONE_NEWCGROUP = 0x02000000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000
_MNT_DETACH = 0x2
_OPEN_TREE_CLONE = 0x1
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
# name: (x86_64, aarch64)
_SYSCALLS = {"pivot_root": (155, 41), "open_tree": (428, 428), "move_mount": (429, 429), "capset": (126, 91)}
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_PROC_COVERED = ("sys", "sysrq-trigger", "irq", "bus")

_libc = ctypes.CDLL(None, use_errno=True)


def _syscall_number(name: str) -> int:
    column = {"x86_64": 0, "aarch64": 1}.get(platform.machine())
    if column is None:
        raise SandboxError(f"the zygote supports x86_64 and aarch64, not {platform.machine()}")
    return _SYSCALLS[name][column]


def _check(result: int, what: str) -> int:
    if result < 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")
    return result


def _syscall(name: str, *args: Any) -> int:
    return _check(_libc.syscall(_syscall_number(name), *args), name)


def _encode(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    result = _libc.mount(
        _encode(source), _encode(target), _encode(fstype), ctypes.c_ulong(flags), _encode(data)
    )
    _check(result, f"mount {target}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _prctl(option: int, *args: int) -> None:
    values = [ctypes.c_ulong(a) for a in args] + [ctypes.c_ulong(0)] * (4 - len(args))
    _check(_libc.prctl(option, *values), f"prctl {option}")


def open_tree(path: str) -> int:
    """A detached copy of the mount at `path` (just that folder or file, no mounts below it), as a
    descriptor that another mount namespace can attach (`move_mount`)."""
    flags = _OPEN_TREE_CLONE | os.O_CLOEXEC
    return _syscall("open_tree", _AT_FDCWD, os.fsencode(path), ctypes.c_uint(flags))


def _attach(tree: int, target: str) -> None:
    _syscall("move_mount", tree, b"", _AT_FDCWD, os.fsencode(target), ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _clear_capabilities() -> None:
    """No effective, permitted or inheritable capability left (the bounding set is dropped apart)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _syscall("capset", ctypes.byref(header), ctypes.byref(data))
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _install_seccomp(program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(
        _libc.prctl(_PR_SET_SECCOMP, ctypes.c_ulong(_SECCOMP_MODE_FILTER), ctypes.byref(fprog), 0, 0),
        "seccomp",
    )


# --- inside the zygote ---------------------------------------------------------------------------------


def _last_capability() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 63


def _make_dir(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _make_file(path: str) -> None:
    _make_dir(os.path.dirname(path))
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _bind(source: str, target: str, *, read_only: bool = True, devices: bool = False) -> None:
    _mount(source, target, None, _MS_BIND | _MS_REC)
    flags = _MS_BIND | _MS_REMOUNT | _MS_NOSUID | (_MS_RDONLY if read_only else 0)
    _mount(None, target, None, flags | (0 if devices else _MS_NODEV))


def _tmpfs(target: str, size: int, mode: str = "1777", flags: int = _MS_NOSUID | _MS_NODEV) -> None:
    _make_dir(target)
    _mount("tmpfs", target, "tmpfs", flags, f"mode={mode},size={size}")


def _build_root(request: dict[str, Any], trees: Sequence[int]) -> None:
    """Lay out the run's filesystem on a fresh tmpfs and pivot into it (see the module's doc, step 2)."""
    # An empty folder of the zygote's own root, never one of the interpreter's: those may lie anywhere,
    # /tmp included (a checkout there), and a tmpfs laid over their folder would hide them.
    root = RUN_ROOT
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    _tmpfs(root, 1 << 20, mode="0755")
    _make_dir(root + "/usr")
    _bind("/usr", root + "/usr")
    for link in _MERGED_USR_LINKS:
        if os.path.islink(link):
            os.symlink(os.readlink(link), root + link)
        elif os.path.isdir(link):
            _make_dir(root + link)
            _bind(link, root + link)
    _make_dir(root + "/etc")
    if os.path.exists("/etc/ld.so.cache"):
        _make_file(root + "/etc/ld.so.cache")
        _bind("/etc/ld.so.cache", root + "/etc/ld.so.cache")
    # The run's /tmp first, as bubblewrap lays it: interpreter folders under /tmp are bound over it.
    _tmpfs(root + SANDBOX_TMP, request["tmp_bytes"])
    for path in request["read_only"]:
        (_make_dir if os.path.isdir(path) else _make_file)(root + path)
        _bind(path, root + path)
    _make_dir(root + "/proc")
    _mount("proc", root + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    for covered in _PROC_COVERED:
        if os.path.exists(f"{root}/proc/{covered}"):
            _bind(f"{root}/proc/{covered}", f"{root}/proc/{covered}")
    _build_dev(root + "/dev", request["tmp_bytes"])
    for bind, tree in zip(request["binds"], trees, strict=True):
        target = root + bind["target"]
        (_make_dir if bind["folder"] else _make_file)(target)
        _attach(tree, target)
        flags = _MS_BIND | _MS_REMOUNT | _MS_NOSUID | _MS_NODEV
        _mount(None, target, None, flags if bind["writable"] else flags | _MS_RDONLY)
    _tmpfs(root + OUTPUT_TARGET, request["output_space"])
    os.chdir(root)
    _syscall("pivot_root", b".", b".")
    _check(_libc.umount2(b".", _MNT_DETACH), "umount the zygote's root")
    os.chdir("/")
    _mount(None, "/", None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.chdir(SANDBOX_TMP)


def _build_dev(dev: str, tmp_bytes: int) -> None:
    """A /dev of the run's own, as bubblewrap's --dev makes it: a few device nodes, a new devpts."""
    _tmpfs(dev, 1 << 16, mode="0755", flags=_MS_NOSUID)
    for name in _DEVICES:
        _make_file(f"{dev}/{name}")
        _bind(f"/dev/{name}", f"{dev}/{name}", read_only=False, devices=True)
    for name, target in (("stdin", "0"), ("stdout", "1"), ("stderr", "2")):
        os.symlink(f"/proc/self/fd/{target}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", f"{dev}/fd")
    os.symlink("/proc/kcore", f"{dev}/core")
    _make_dir(f"{dev}/pts")
    _mount("devpts", f"{dev}/pts", "devpts", _MS_NOSUID | _MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    _tmpfs(dev + SANDBOX_SHM.removeprefix("/dev"), tmp_bytes)
    _mount(None, dev, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(probe, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))


def _close_all_but(keep: Sequence[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _computation(request: dict[str, Any]) -> int:
    """P: the run's uid, its environment, then the bootstrap with the request's argv."""
    uid = int(request["uid"])
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _clear_capabilities()
    _close_all_but((0, 1, 2, STARTED_FD))
    _python_path(os.environ.get("PYTHONPATH", ""), request["env"].get("PYTHONPATH", ""))
    os.environ.clear()
    os.environ.update(request["env"])
    random = sys.modules.get("numpy.random")
    if random is not None:
        random.seed()  # numpy's global state would otherwise be the zygote's in every run
    from custos.sandbox import bootstrap

    return bootstrap.main(list(request["argv"]))


def _python_path(started_with: str, wanted: str) -> None:
    """sys.path as an interpreter started with PYTHONPATH=`wanted` would have it, in one that was
    started with `started_with`: its entries first, before the standard library."""
    if started_with == wanted:
        return
    old = [entry for entry in started_with.split(os.pathsep) if entry]
    new = [entry for entry in wanted.split(os.pathsep) if entry]
    sys.path[:] = [*new, *(entry for entry in sys.path if entry not in old)]


def _finish_python() -> None:
    """What the interpreter does at exit: wait for non-daemon threads, run atexit, flush."""
    with contextlib.suppress(BaseException):
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
    with contextlib.suppress(BaseException):
        import atexit

        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()


def _init(request: dict[str, Any], fds: dict[str, int], trees: Sequence[int], seccomp: bytes) -> None:
    """G, pid 1 of the run's pid namespace. Never returns."""
    code = _SETUP_FAILED
    try:
        os.dup2(fds["stdout"], 1)
        os.dup2(fds["stderr"], 2)
        os.dup2(fds["started"], STARTED_FD)
        status = socket.socket(fileno=fds["status"])
        status.sendall(b"h")
        if status.recv(1) != b"g":
            os._exit(_SETUP_FAILED)
        status.close()
        # A mount namespace of G's own (not C's: pivot_root moves every process of a namespace).
        _unshare(_CLONE_NEWNS | _CLONE_NEWCGROUP)
        _build_root(request, trees)
        for fd in (*trees, fds["stdout"], fds["stderr"], fds["started"]):
            os.close(fd)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        socket.sethostname(HOSTNAME)
        _loopback_up()
        for capability in range(_last_capability() + 1):
            with contextlib.suppress(OSError):
                _prctl(_PR_CAPBSET_DROP, capability)
        _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        _install_seccomp(seccomp)
        computation = os.fork()
        if computation == 0:
            code = 1
            try:
                code = _computation(request)
            finally:
                _finish_python()
                os._exit(code)
        _clear_capabilities()
        _close_all_but(())
        while True:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                os._exit(1)
            if pid == computation:
                exit_code = os.waitstatus_to_exitcode(wait_status)
                os._exit(exit_code if exit_code >= 0 else 128 - exit_code)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
            sys.stderr.flush()
        os._exit(code)


def _child(request: dict[str, Any], fds: dict[str, int], trees: Sequence[int], seccomp: bytes) -> None:
    """C: new namespaces, fork G, report how G ended. Never returns."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _unshare(_CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS)
        init = os.fork()
        if init == 0:
            _init(request, fds, trees, seccomp)
        _close_all_but((fds["status"],))
        _, wait_status, usage = os.wait4(init, 0)
        report = {"status": wait_status, "cpu_s": usage.ru_utime + usage.ru_stime}
        os.write(fds["status"], json.dumps(report).encode())
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    os._exit(0)


_FD_NAMES = ("payload", "stdout", "stderr", "started", "status")


def serve(control: socket.socket) -> None:
    """The zygote's loop: one fork per request, until the gateway closes the control socket."""
    seccomp = seccomp_program()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    while True:
        message, fds, flags, _ = socket.recv_fds(control, 16, _MAX_FDS, socket.MSG_CMSG_CLOEXEC)
        if not message:
            return
        try:
            if flags & socket.MSG_CTRUNC or len(fds) < len(_FD_NAMES):
                print("custos zygote: a request came without its descriptors", file=sys.stderr)
                continue
            named = dict(zip(_FD_NAMES, fds, strict=False))
            trees = fds[len(_FD_NAMES) :]
            payload = os.fstat(named["payload"]).st_size
            request = json.loads(os.pread(named["payload"], payload, 0))
            sys.stdout.flush()
            sys.stderr.flush()
            if os.fork() == 0:
                os.close(control.fileno())
                _child(request, named, trees, seccomp)
        finally:
            for fd in fds:
                os.close(fd)


def main(argv: Sequence[str]) -> int:
    """`python -m custos.sandbox.zygote CONTROL_FD [--warm] MODULE...`: import each MODULE (and call
    its `preload(warm)` when it has one), then serve."""
    if len(argv) < 1 or not argv[0].isdigit():
        print("usage: python -m custos.sandbox.zygote CONTROL_FD [--warm] MODULE...", file=sys.stderr)
        return 2
    warm = "--warm" in argv[1:]
    import importlib

    for name in (a for a in argv[1:] if a != "--warm"):
        module = importlib.import_module(name)
        preload = getattr(module, "preload", None)
        if callable(preload):
            preload(warm)
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        print(f"custos zygote: {threads} threads after the imports; forks copy only one", file=sys.stderr)
    with socket.socket(fileno=int(argv[0])) as control:
        serve(control)
    return 0


# --- the gateway's side ---------------------------------------------------------------------------------


class _ForkedRun:
    """A run forked by the zygote, as the supervisor sees it (supervisor.Sandboxed): its output pipes,
    and its status socket, on which the zygote's child reports how the run's init ended."""

    def __init__(self, stdout: int, stderr: int, status: socket.socket, pidfd: int | None) -> None:
        self.pid = -1
        self.stdout: IO[bytes] | None = open(stdout, "rb", buffering=0)  # noqa: SIM115 - the supervisor closes it
        self.stderr: IO[bytes] | None = open(stderr, "rb", buffering=0)  # noqa: SIM115
        self._status = status
        self._pidfd = pidfd

    def ended(self) -> tuple[int, float] | None:
        try:
            report = self._status.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except OSError:
            report = b""
        return self._report(report)

    def end(self) -> tuple[int, float]:
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        self._status.settimeout(_END_WAIT_S)
        try:
            report = self._status.recv(4096)
        except OSError:
            report = b""
        return self._report(report)

    def _report(self, report: bytes) -> tuple[int, float]:
        self._status.close()
        if not report:  # the zygote's child is gone without a word (the zygote was killed): so is the run
            if self._pidfd is not None:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            return -signal.SIGKILL, 0.0
        found = json.loads(report)
        return os.waitstatus_to_exitcode(int(found["status"])), float(found["cpu_s"])


class _Zygote:
    """The gateway's handle on its zygote: started on first use, started again if it died."""

    def __init__(self, command: list[str], tail: list[str], env: dict[str, str]) -> None:
        self._command = command
        self._tail = tail
        self._env = env
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._closed = False

    def _start(self) -> socket.socket:
        """Start the zygote from a thread of its own that lives as long as it does: bubblewrap's
        --die-with-parent ends it when the thread that started it ends (or the gateway dies)."""
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        started: list[subprocess.Popen[bytes] | OSError] = []
        ready = threading.Event()

        def keep() -> None:
            try:
                process = subprocess.Popen(
                    [*self._command, str(theirs.fileno()), *self._tail],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    env=self._env,
                    pass_fds=[theirs.fileno()],
                    start_new_session=True,
                )
            except OSError as exc:
                started.append(exc)
                ready.set()
                return
            started.append(process)
            ready.set()
            process.wait()

        try:
            threading.Thread(target=keep, name="custos-zygote", daemon=True).start()
            ready.wait()
        finally:
            theirs.close()
        found = started[0]
        if isinstance(found, OSError):
            control.close()
            raise SandboxError(f"the sandbox's zygote could not be started: {found}")
        self._process = found
        log.info("started the sandbox zygote (pid %d)", found.pid)
        self._control = control
        return control

    def send(self, fds: list[int]) -> None:
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox runner is closed")
            for attempt in (1, 2):
                if self._control is None or self._process is None or self._process.poll() is not None:
                    self._stop()
                    self._start()
                assert self._control is not None
                try:
                    socket.send_fds(self._control, [b"r"], fds)
                    return
                except OSError as exc:
                    if attempt == 2:
                        raise SandboxError(f"the sandbox's zygote does not take requests: {exc}") from exc
                    log.warning("the sandbox zygote is gone (%s); starting another", exc)
                    self._stop()

    @property
    def pid(self) -> int | None:
        """The pid of the bubblewrap that runs the zygote, None before it started or once it ended."""
        process = self._process
        return None if process is None or process.poll() is not None else process.pid

    def discard(self) -> None:
        """Stop the zygote (it no longer answers); the next run starts another."""
        with self._lock:
            self._stop()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop()

    def _stop(self) -> None:
        if self._control is not None:
            self._control.close()  # the zygote ends when it reads the end of its control socket
            self._control = None
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(timeout=_CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class ZygoteRunner(BubblewrapRunner):
    """Forks each run from the gateway's zygote (see the module's doc). Root only. Safe to share
    between threads; `close` stops the zygote. `preload` names the modules the zygote imports before
    its first run; `warm` has their `preload` import what only some jobs need (OpenDP)."""

    def __init__(
        self,
        *,
        preload: Sequence[str] = (),
        warm: bool = False,
        python: Path | None = None,
        bwrap: str = "bwrap",
    ) -> None:
        if os.geteuid() != 0:
            raise SandboxError("the zygote runner needs root; use BubblewrapRunner")
        super().__init__(python=python, bwrap=bwrap)
        self._probe_mount_api()
        command = [*self._zygote_arguments(), "-m", "custos.sandbox.zygote"]
        tail = [*(["--warm"] if warm else []), *preload]
        self._zygote = _Zygote(command, tail, self._zygote_environment())

    @staticmethod
    def _probe_mount_api() -> None:
        try:
            os.close(open_tree("/"))
        except OSError as exc:
            raise SandboxError(f"this kernel cannot clone mounts for the zygote (open_tree: {exc})") from exc

    def _zygote_environment(self) -> dict[str, str]:
        request = SandboxRequest(argv=["-c", ""], output_dir=Path("/"))
        env = self._environment(request, STARTED_FD)
        env = {k: v for k, v in env.items() if k not in (STARTED_FD_VARIABLE, "CUSTOS_SANDBOX_LIMITS")}
        # pyarrow's allocator starts a background thread unless told not to; a fork copies one thread
        # only, so the zygote keeps to one.
        return env | {"JE_ARROW_MALLOC_CONF": "background_thread:false"}

    def _zygote_arguments(self) -> list[str]:
        args = [self._bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        args += ["--new-session", "--die-with-parent", "--hostname", "zygote"]
        args += ["--ro-bind", "/usr", "/usr"]
        for link in _MERGED_USR_LINKS:
            if os.path.islink(link):
                args += ["--symlink", os.readlink(link), link]
            elif os.path.isdir(link):
                args += ["--ro-bind", link, link]
        args += ["--dir", "/etc", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", SANDBOX_TMP]
        made: set[str] = {"/etc"}
        for target in self._interpreter.read_only:
            for parent in _ancestors(target):
                if parent not in made and not is_within(parent, "/usr"):
                    made.add(parent)
                    args += ["--dir", parent]
        for path in self._interpreter.read_only:
            args += ["--ro-bind", path, path]
        args += ["--dir", RUN_ROOT, "--remount-ro", "/", "--chdir", SANDBOX_TMP]
        for capability in ZYGOTE_CAPABILITIES:
            args += ["--cap-add", capability]
        return [*args, "--", str(self._interpreter.executable), "-s", "-P"]

    @property
    def interpreter(self) -> Path:
        """The Python the zygote runs."""
        return self._interpreter.executable

    @property
    def zygote_pid(self) -> int | None:
        """The pid of the bubblewrap that runs the zygote (its process group), None when none runs."""
        return self._zygote.pid

    def close(self) -> None:
        """Stop the zygote; runs still going end with it."""
        self._zygote.close()

    def _start(self, request: SandboxRequest, uid: int | None, cgroup: RunCgroup | None) -> Supervised:
        assert uid is not None
        payload = {
            "argv": list(request.argv),
            "env": self._environment(request, STARTED_FD),
            "uid": uid,
            "tmp_bytes": request.limits.tmp_bytes,
            "output_space": _output_space(request.limits),
            "read_only": list(self._interpreter.read_only),
            "binds": [
                {"target": b.target, "writable": b.writable, "folder": b.host.is_dir()} for b in request.binds
            ],
        }
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        started, started_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status, status_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        status.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        theirs = [out_write, err_write, started_theirs.fileno(), status_theirs.fileno()]
        trees: list[int] = []
        memfd = os.memfd_create("custos-run", os.MFD_CLOEXEC)
        try:
            os.write(memfd, json.dumps(payload).encode())
            for bind in request.binds:
                trees.append(open_tree(str(bind.host)))
            self._zygote.send([memfd, *theirs, *trees])
        except BaseException:
            for fd in (out_read, err_read):
                os.close(fd)
            started.close()
            status.close()
            raise
        finally:
            for fd in (memfd, out_write, err_write, *trees):
                os.close(fd)
            started_theirs.close()
            status_theirs.close()
        pidfd, pid = self._admit(status, cgroup)
        run = _ForkedRun(out_read, err_read, status, pidfd)
        limits = request.limits
        supervisor = Supervisor(
            run,
            info_fd=None,
            started=started,
            wall_seconds=limits.wall_seconds,
            wall_breach=limits.wall_breach(),
            check=breach_check(request, cgroup),
            init=None if pidfd is None else (pidfd, pid),
        )
        return supervisor.supervise()

    def _admit(self, status: socket.socket, cgroup: RunCgroup | None) -> tuple[int | None, int]:
        """Wait for the run's init to say hello, pin it with a pidfd, move it into the run's cgroups and
        let it go on. (None, -1) when it ended before saying hello (the supervisor then reports it)."""
        status.settimeout(HELLO_TIMEOUT_S)
        credentials = struct.calcsize("3i")
        try:
            message, ancillary, _, _ = status.recvmsg(1, socket.CMSG_SPACE(credentials))
        except TimeoutError:
            self._zygote.discard()
            status.close()
            raise SandboxError(
                f"the sandbox's zygote did not fork the run within {HELLO_TIMEOUT_S:g} s"
            ) from None
        except OSError:
            message, ancillary = b"", []
        if message != b"h":
            return None, -1
        pid = next(
            struct.unpack("3i", data[:credentials])[0]
            for level, kind, data in ancillary
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
        )
        pidfd = os.pidfd_open(pid)
        try:
            if cgroup is not None:
                cgroup.add(pid)
            status.settimeout(None)
            status.sendall(b"g")
        except OSError as exc:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            if exc.errno == errno.EPIPE:
                return pidfd, pid
            os.close(pidfd)
            raise SandboxError(f"the run could not be moved into its cgroup: {exc}") from exc
        return pidfd, pid


def job_runner(*, preload: Sequence[str] = (), warm: bool = False) -> BubblewrapRunner:
    """The runner for a gateway's job runtimes: the zygote when the gateway runs as root and the
    kernel can clone mounts, bubblewrap per run otherwise."""
    if os.geteuid() == 0:
        try:
            return ZygoteRunner(preload=preload, warm=warm)
        except SandboxError as exc:
            log.warning("job runtimes start with bubblewrap for each run: %s", exc)
    return BubblewrapRunner()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
