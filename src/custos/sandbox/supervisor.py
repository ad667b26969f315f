"""Supervision of one started sandbox: collect the tails of its stdout and stderr, receive its output
folder when it comes up, enforce the wall clock, poll a limit check while it runs, and end it — all
from one loop in the calling thread, every wait bounded.

The process supervised is bubblewrap (a Popen), or a run forked by the zygote (`sandbox/zygote.py`),
seen through a `Sandboxed` handle. Killing the sandbox's first process (the init inside the new pid
namespace: bubblewrap's, found through --info-fd, or the zygote's, known from the start) makes the
kernel kill every other process in that namespace; the run then ends by itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from custos.sandbox.runner import STREAM_TAIL_BYTES

_TICK_S = 0.05
_CHECK_EVERY_S = 0.25
_DRAIN_S = 2.0
_EXIT_AFTER_KILL_S = 5.0
_READ_BYTES = 1 << 16
_SMALL_READ_LIMIT = 1 << 12
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class TailBuffer:
    """Keeps only the last `limit` bytes written to it."""

    def __init__(self, limit: int = STREAM_TAIL_BYTES) -> None:
        self.limit = limit
        self._data = bytearray()

    def write(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > self.limit:
            del self._data[: len(self._data) - self.limit]

    def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Supervised:
    """How the supervised process ended. `stopped_for` is the reason the supervisor killed it, if it did.
    `exit_code` follows subprocess: negative when bubblewrap itself died of a signal. `cpu_s` is the
    most CPU time the computation's main process was seen to use. `started` says whether the bootstrap
    reported that the sandbox came up; `output_fd` is the descriptor of the sandbox's /output it
    handed over then (the caller closes it), None if it never did."""

    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    cpu_s: float
    started: bool
    stopped_for: str | None
    output_fd: int | None


def _cpu_seconds(pid: int) -> float:
    """CPU time of a live process, 0 if it is gone. The scheduler's own count of each live thread
    (schedstat, in nanoseconds) is exact; /proc/PID/stat adds exited threads, but counts in clock
    ticks and lags the time the kernel holds against RLIMIT_CPU."""
    total_ns = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total_ns += int((task / "schedstat").read_text().split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return total_ns / 1e9
    return max(total_ns / 1e9, (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)


def _first_child(pid: int) -> int | None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _pidfd_of_child(info: bytes, parent: int) -> tuple[int, int] | None:
    """A pidfd for bubblewrap's child named in its --info-fd JSON (once the JSON is complete), if that
    process is still bubblewrap's child."""
    try:
        pid = int(json.loads(info)["child-pid"])
        pidfd = os.pidfd_open(pid)
    except (ValueError, KeyError, TypeError, OSError):
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        os.close(pidfd)
        return None
    if f"\nPPid:\t{parent}\n" not in status:
        os.close(pidfd)
        return None
    return pidfd, pid


class Sandboxed(Protocol):
    """A started sandbox as the supervisor sees it: its output streams, and how it ended."""

    pid: int
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None

    def ended(self) -> tuple[int, float] | None:
        """(exit code as subprocess gives it, CPU seconds) once the sandbox has ended, without waiting."""
        ...

    def end(self) -> tuple[int, float]:
        """Kill whatever is left of the sandbox by other means than its init, and wait for its end."""
        ...


class _Popened:
    """A Popen'd bubblewrap as a Sandboxed."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self.pid = process.pid
        self.stdout = process.stdout
        self.stderr = process.stderr

    def ended(self) -> tuple[int, float] | None:
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        return self._ended(status, usage)

    def end(self) -> tuple[int, float]:
        # bubblewrap's --die-with-parent kills the sandbox when bubblewrap dies.
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        _, status, usage = os.wait4(self.pid, 0)
        return self._ended(status, usage)

    def _ended(self, status: int, usage: resource.struct_rusage) -> tuple[int, float]:
        exit_code = os.waitstatus_to_exitcode(status)
        self._process.returncode = exit_code
        return exit_code, usage.ru_utime + usage.ru_stime


class Supervisor:
    """Runs the loop for one started sandbox: a Popen'd bubblewrap or another `Sandboxed`. `info_fd`
    is the read end of a pipe whose write end bubblewrap holds (--info-fd), or None when `init` (a
    pidfd of the sandbox's init and its pid) is known already; `started` is the runner's end of the
    socket on which the bootstrap says it is up and hands over its /output. `check` runs every 0.25 s
    with that descriptor (None until it came) and returns a sentence when the run must stop (a broken
    limit)."""

    def __init__(
        self,
        process: subprocess.Popen[bytes] | Sandboxed,
        *,
        info_fd: int | None,
        started: socket.socket,
        wall_seconds: float,
        wall_breach: str,
        check: Callable[[int | None], str | None],
        init: tuple[int, int] | None = None,
    ) -> None:
        self._process: Sandboxed = _Popened(process) if isinstance(process, subprocess.Popen) else process
        self._wall_seconds = wall_seconds
        self._wall_breach = wall_breach
        self._check = check
        self._stdout = TailBuffer()
        self._stderr = TailBuffer()
        self._info = bytearray()
        self._started = False
        self._started_socket = started
        self._output_fd: int | None = None
        self._pidfd: int | None = None
        self._init_pid: int | None = None
        if init is not None:
            self._pidfd, self._init_pid = init
        self._main_pid: int | None = None
        self._main_cpu_s = 0.0
        self._status: tuple[int, float] | None = None
        self._selector = selectors.DefaultSelector()
        stdout, stderr = self._process.stdout, self._process.stderr
        assert stdout is not None and stderr is not None
        self._sinks: dict[int, Callable[[bytes], None]] = {
            stdout.fileno(): self._stdout.write,
            stderr.fileno(): self._stderr.write,
        }
        self._owned = []
        if info_fd is not None:
            self._sinks[info_fd] = self._on_info
            self._owned.append(info_fd)
        for fd in self._sinks:
            self._selector.register(fd, selectors.EVENT_READ)
        self._selector.register(started, selectors.EVENT_READ)

    def _on_info(self, chunk: bytes) -> None:
        if len(self._info) < _SMALL_READ_LIMIT:
            self._info += chunk
        if self._pidfd is None:
            found = _pidfd_of_child(bytes(self._info), self._process.pid)
            if found is not None:
                self._pidfd, self._init_pid = found

    def _on_started(self) -> None:
        """The bootstrap's one message: a byte, with the descriptor of its /output. Only the first
        descriptor is kept; the socket is read until the bootstrap closes its end."""
        message, fds, _, _ = socket.recv_fds(self._started_socket, _SMALL_READ_LIMIT, 1)
        if not message:
            self._selector.unregister(self._started_socket)
            return
        self._started = True
        for fd in fds:
            if self._output_fd is None:
                self._output_fd = fd
            else:
                os.close(fd)

    def _pump(self, timeout: float) -> None:
        for key, _ in self._selector.select(max(timeout, 0.0)):
            if key.fileobj is self._started_socket:
                self._on_started()
                continue
            fd = int(key.fd)
            chunk = os.read(fd, _READ_BYTES)
            if chunk:
                self._sinks[fd](chunk)
                continue
            self._selector.unregister(fd)

    def _poll(self) -> bool:
        if self._status is None:
            self._status = self._process.ended()
        return self._status is not None

    def _sample_cpu(self) -> None:
        """Remember the CPU time of the computation's main process. The kernel's rusage does not
        reach through the pid namespace's init, so this is how a process killed at the hard CPU
        limit (one that ignored SIGXCPU) is still known to have used up its CPU time."""
        if self._main_pid is None and self._init_pid is not None:
            self._main_pid = _first_child(self._init_pid)
        if self._main_pid is not None:
            self._main_cpu_s = max(self._main_cpu_s, _cpu_seconds(self._main_pid))

    def _await_init(self) -> None:
        """Wait until the namespace's init has exited. bubblewrap reports the exit status as soon as
        the computation's main process ends, while its init may still be killing the namespace's
        other processes; once the init is gone, so is everything it was killing."""
        if self._pidfd is None:
            return
        for deadline_s in (_EXIT_AFTER_KILL_S, _EXIT_AFTER_KILL_S):
            if select.select([self._pidfd], [], [], deadline_s)[0]:
                return
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _kill(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        deadline = time.monotonic() + _EXIT_AFTER_KILL_S
        while not self._poll() and time.monotonic() < deadline:
            self._pump(_TICK_S)
        if not self._poll():
            self._status = self._process.end()

    def supervise(self) -> Supervised:
        start = time.monotonic()
        deadline = start + self._wall_seconds
        next_check = start + _CHECK_EVERY_S
        stopped_for: str | None = None
        try:
            while not self._poll():
                now = time.monotonic()
                if now >= deadline:
                    stopped_for = self._wall_breach
                elif now >= next_check:
                    next_check = now + _CHECK_EVERY_S
                    self._sample_cpu()
                    stopped_for = self._check(self._output_fd)
                if stopped_for is not None:
                    self._kill()
                    break
                self._pump(min(_TICK_S, deadline - now))
            drain_until = time.monotonic() + _DRAIN_S
            while self._selector.get_map() and time.monotonic() < drain_until:
                self._pump(_TICK_S)
            self._await_init()
        except BaseException:
            if self._output_fd is not None:
                os.close(self._output_fd)
            raise
        finally:
            self._close()
        duration = time.monotonic() - start
        assert self._status is not None
        exit_code, cpu_s = self._status
        return Supervised(
            exit_code=exit_code,
            stdout=self._stdout.text(),
            stderr=self._stderr.text(),
            duration_s=duration,
            cpu_s=max(cpu_s, self._main_cpu_s),
            started=self._started,
            stopped_for=stopped_for,
            output_fd=self._output_fd,
        )

    def _close(self) -> None:
        if self._status is None:
            self._kill()
        self._selector.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
        for fd in self._owned:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._started_socket.close()
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()
