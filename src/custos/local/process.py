"""A child process with its own log file, started and stopped by its PID: the pieces of a loopback
deployment (`custos.local.cluster`).

Each process runs in a session of its own, so a Ctrl-C in the terminal reaches only its parent, which
stops the children in order: SIGTERM, then SIGKILL after a bounded wait. A process an earlier run
started (and recorded by PID and command line) is found again with `runs_as` and stopped with
`stop_pid`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from custos.core.errors import CustosError

LOG_TAIL_LINES = 30


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it for a socket bound to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def runs_as(pid: int, argv: list[str]) -> bool:
    """Whether process `pid` is alive and runs exactly `argv`: a recorded PID the OS has since given to
    another program is not ours. (A zombie has no command line, so it counts as gone.)"""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return raw.split(b"\0")[:-1] == [arg.encode() for arg in argv]


def stop_pid(pid: int, argv: list[str], timeout: float) -> None:
    """Stop process `pid`, which an earlier run started, if it still runs `argv`: SIGTERM, wait up to
    `timeout` seconds, then SIGKILL. It is not our child, so its exit is watched through /proc."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if not runs_as(pid, argv):
            return
        os.kill(pid, signum)
        deadline = time.monotonic() + timeout
        while runs_as(pid, argv) and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass
class ManagedProcess:
    """A child process this cluster started, with its log file. Stopped only by its own PID."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)
    _terminated: bool = field(default=False, repr=False)

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"--- starting: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self._terminated = False
        # A session of its own: a Ctrl-C in the terminal reaches only us, and we stop children in order.
        self.popen = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_running(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise CustosError(
                f"{self.name} exited with code {self.popen.returncode}: "
                f"{log_tail(self.log_path, 1)} (log: {self.log_path})"
            )

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM) without waiting, so several can shut down at once. Sent
        once: a second signal would interrupt the process's own clean-up."""
        if self.popen is not None and self.popen.poll() is None and not self._terminated:
            self._terminated = True
            self.popen.send_signal(signal.SIGTERM)

    def send(self, signum: int) -> None:
        """Send `signum` to this process (by its PID), as an operator's `kill -SIG PID` would."""
        if self.popen is not None and self.popen.poll() is None:
            self._terminated = signum == signal.SIGTERM
            self.popen.send_signal(signum)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait up to `timeout` seconds for the process to end; its exit code, or None if it still runs."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, timeout: float) -> None:
        """SIGKILL at once, as a crash or a power cut would end it; wait for it to be gone."""
        popen = self.popen
        if popen is not None and popen.returncode is None:
            popen.kill()
            popen.wait(timeout=timeout)
            if self._log is not None:
                self._log.write(b"--- killed (SIGKILL)\n")
        self.popen = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, timeout: float) -> None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Notes in the log how it ended."""
        popen = self.popen
        if popen is not None and popen.returncode is None:
            self.terminate()
            try:
                popen.wait(timeout=timeout)
                how = f"exited with code {popen.returncode} after SIGTERM"
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=timeout)
                how = f"killed: still running {timeout:g} s after SIGTERM"
            if self._log is not None:
                self._log.write(f"--- {how}\n".encode())
        # Forget the process, so that waits on the others do not count its exit as a crash.
        self.popen = None
        if self._log is not None:
            self._log.close()
            self._log = None
