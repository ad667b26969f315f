"""Sandbox users: a fresh unprivileged uid for every run (when the gateway runs as root), and the
processes running under one.

A uid of its own gives each run its own process count (RLIMIT_NPROC counts per uid), makes its files
unreadable to any other run, and lets the runner find and end every process the run left behind.
The uids need no passwd entry; they are picked from a range no distribution hands out.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from pathlib import Path

from custos.core.errors import SandboxError

UID_RANGE = range(200_000, 265_536)
_PICK_ATTEMPTS = 1000
_KILL_TIMEOUT_S = 10.0
_KILL_PAUSE_S = 0.02


def _real_uid(pid: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def processes_of(uid: int) -> list[int]:
    """Pids of every process (and zombie) whose real uid is `uid`."""
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _real_uid(pid) == uid]


def _kill(pid: int, uid: int) -> None:
    """SIGKILL `pid` only if it still belongs to `uid`: the pidfd pins the process, so a pid reused by
    another process between the scan and the signal is never hit."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if _real_uid(str(pid)) == uid:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)


class SandboxUsers:
    """Hands out uids that no running process and no other run of this gateway uses."""

    _lock = threading.Lock()
    _in_use: set[int] = set()

    def allocate(self) -> int:
        with self._lock:
            for _ in range(_PICK_ATTEMPTS):
                uid = UID_RANGE.start + secrets.randbelow(len(UID_RANGE))
                if uid not in self._in_use and not processes_of(uid):
                    self._in_use.add(uid)
                    return uid
        raise SandboxError("no free sandbox user id was found; too many sandboxes are running")

    def release(self, uid: int) -> None:
        with self._lock:
            self._in_use.discard(uid)

    def end_processes(self, uid: int) -> None:
        """SIGKILL every process of `uid` until none is left. Raises SandboxError if some survive."""
        deadline = time.monotonic() + _KILL_TIMEOUT_S
        while time.monotonic() < deadline:
            pids = processes_of(uid)
            if not pids:
                return
            for pid in pids:
                _kill(pid, uid)
            time.sleep(_KILL_PAUSE_S)
        left = processes_of(uid)
        if left:
            raise SandboxError(
                f"{len(left)} process(es) of sandbox user {uid} were still running "
                f"{_KILL_TIMEOUT_S:g} s after the run ended"
            )
