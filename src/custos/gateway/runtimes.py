"""Sandboxed job runtimes at a gateway: one sandbox per (job, dataset), kept for all of the job's
rounds, so a round pays no process start and no imports (docs/architecture.md, "The sandboxed runtime").

A runtime owns a short private folder holding two unix sockets that are bound into its sandbox at
/ipc: the DAL, serving only this job's grant to this runtime's token, and the round socket, on which
the gateway sends one frame per round and reads one frame back. Closing the round socket ends the
sandboxed process. Runtimes idle for longer than `idle_s` are closed by `reap`.

Nothing the sandbox can read names a host folder: the folder is made in /dev/shm where there is one
(the sandbox's mount table shows a bind's source only within its own filesystem: there, a random
name), and the sockets are bound under /proc/self/fd/N, the gateway's descriptor of that folder (the
name a socket was bound to shows in /proc/net/unix of whoever connects to it).

The pool keeps spare runtimes started ahead of need (gateway.yaml's `warm_spares`, 0 for none):
booted and imported (OpenDP too, `warm`, when the site's policies use differential privacy), holding
no grant and no data. The first spare boots at the first `reap`, which the agent calls once it is
connected, so that it never slows the gateway's start. The next job takes a spare (and only that job
ever uses it), so a job's first round pays no start either. Runtimes are closed in the background,
never on a job's critical path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custos.core.errors import LimitExceeded, SandboxError
from custos.core.frames import recv_frame, send_frame
from custos.gateway.dal import DalServer, DatasetGrant
from custos.sandbox.limits import SandboxLimits
from custos.sandbox.runner import Bind, Runner, SandboxRequest, SandboxResult

log = logging.getLogger("custos.gateway")

IPC_TARGET = "/ipc"
# The module a job runtime runs, and what a gateway's zygote imports ahead of every job.
RUNTIME_MODULE = "custos.computations.runtime"
JOB_RUNTIME_MODULES = (RUNTIME_MODULE,)
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 - the host's, for the sockets' folder only
CONNECT_TIMEOUT_S = 60.0
CLOSE_WAIT_S = 5.0


@dataclass(frozen=True)
class RuntimeKey:
    """A runtime is reused only for the same job, dataset, parameters and granted columns."""

    job_id: str
    dataset: str
    params_digest: str
    columns: frozenset[str]


class JobRuntime:
    def __init__(
        self, runner: Runner, limits: SandboxLimits, *, max_result_bytes: int, warm: bool = False
    ) -> None:
        """Start the sandboxed runtime in the background. It can compute once `assign` gave it a grant.
        `warm` has it import what only some jobs need (differential privacy) before the first round."""
        self.token = secrets.token_urlsafe(32)
        self.started_at = self.last_used = time.monotonic()
        self.limits = limits
        self._limits = limits
        self._max_result_bytes = max_result_bytes
        self._conn: socket.socket | None = None
        self._result: SandboxResult | None = None
        self._closing = False
        self._stop = threading.Event()
        self._cleanup_lock = threading.Lock()
        self._dal: DalServer | None = None
        self._ipc_fd: int | None = None
        self._folder = Path(tempfile.mkdtemp(prefix="custos-job-"))
        output = self._folder / "output"
        output.mkdir(mode=0o700)
        self._ipc = ipc = Path(tempfile.mkdtemp(prefix="custos-", dir=_ipc_parent()))
        try:
            ipc.chmod(0o755)  # the sandbox runs as another, unprivileged uid
            self._ipc_fd = os.open(ipc, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(str(self._named("rounds.sock")))
            (ipc / "rounds.sock").chmod(0o666)
            self._listener.listen(1)
        except BaseException:
            self.close()
            raise
        argv = ["-m", RUNTIME_MODULE, "--serve", f"{IPC_TARGET}/rounds.sock"]
        request = SandboxRequest(
            argv=[*argv, "--warm"] if warm else argv,
            output_dir=output,
            binds=[Bind(ipc, IPC_TARGET)],
            limits=limits,
            stop=self._stop,
        )
        self._thread = threading.Thread(target=self._run, args=(runner, request), daemon=True)
        self._thread.start()

    def assign(
        self,
        grants: Mapping[str, DatasetGrant],
        *,
        access_log: Path | None,
        on_access: Callable[[str], None] | None = None,
    ) -> None:
        """Give this runtime its one job's grant: start the DAL that serves it to this runtime's token."""
        if self._dal is not None:
            raise SandboxError("a job runtime serves one job only")
        self._dal = DalServer.start(
            self._named("dal.sock"), self.token, grants, access_log=access_log, on_access=on_access
        )

    def _named(self, name: str) -> Path:
        """`name` in the runtime's socket folder, by a path that names no host folder."""
        return Path(f"/proc/self/fd/{self._ipc_fd}/{name}")

    def served_reads(self) -> list[int]:
        """The rows of each read the DAL served this runtime so far, oldest first."""
        return [] if self._dal is None else [a.rows for a in self._dal.accesses if a.allowed]

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing

    def _run(self, runner: Runner, request: SandboxRequest) -> None:
        try:
            self._result = runner.run(request)
        except Exception as exc:
            self._result = SandboxResult(-1, "", "", 0.0, f"the sandbox could not start: {exc}")
        finally:
            if self._closing:
                self._cleanup()

    @property
    def dal_socket(self) -> str:
        return f"{IPC_TARGET}/dal.sock"

    def _failure(self) -> SandboxError:
        """Why the sandbox ended: LimitExceeded naming the limit, or SandboxError with what it said."""
        self._thread.join(timeout=10)
        result = self._result
        if result is None:
            return SandboxError("the sandboxed runtime stopped answering")
        if result.limit and result.failure:
            return LimitExceeded(result.failure)
        reason = result.failure or "the sandboxed runtime ended"
        tail = result.stderr.strip().splitlines()[-1:] if result.stderr else []
        return SandboxError(f"{reason}: {tail[0]}" if tail and not result.failure else reason)

    def _connect(self) -> socket.socket:
        self._listener.settimeout(0.1)
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise self._failure()
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            return conn
        raise SandboxError(f"the sandboxed runtime did not start within {CONNECT_TIMEOUT_S:g} s")

    def compute(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one round and return the runtime's answer. Raises SandboxError if the sandbox ended."""
        if self._dal is None:
            raise SandboxError("the job runtime has no grant; assign one first")
        self.last_used = time.monotonic()
        if self._conn is None:
            self._conn = self._connect()
        self._conn.settimeout(self._limits.wall_seconds + 5)
        try:
            send_frame(self._conn, request)
            reply = recv_frame(self._conn, max_bytes=self._max_result_bytes)
        except (OSError, TimeoutError) as exc:
            raise (self._failure() if not self._thread.is_alive() else SandboxError(str(exc))) from exc
        finally:
            self.last_used = time.monotonic()
        if reply is None:
            raise self._failure()
        return reply

    def stop(self) -> None:
        """End the sandboxed process tree now, whatever it is doing (its job was cancelled): a round
        it is computing fails. Safe to call from any thread; `close` still cleans up."""
        self._stop.set()

    def attest(self) -> str:
        """Have the runtime make its ephemeral key pair; returns the public key (base64 X25519). The
        private key stays in the sandboxed process (custos.computations.package.confidential)."""
        reply = self.compute({"attest": True})
        key = reply.get("public_key")
        if not reply.get("ok") or not isinstance(key, str):
            raise SandboxError("the sandboxed runtime did not make an attestation key")
        return key

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """End the sandboxed process, stop the DAL and remove the runtime's folder. Idempotent. If the
        sandbox is still busy after `wait_s`, it is left to its wall-clock limit and cleans up when it
        ends, so that closing never blocks for long."""
        self._closing = True
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
        listener = getattr(self, "_listener", None)
        if listener is not None:
            listener.close()  # a runtime that never connected now fails to, and exits
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout=wait_s)
            if thread.is_alive():
                log.warning("a job runtime is still busy; it is cleaned up when its sandbox ends")
                return
        self._cleanup()

    def close_in_background(self) -> threading.Thread:
        closer = threading.Thread(target=self.close, daemon=True)
        closer.start()
        return closer

    def _cleanup(self) -> None:
        with self._cleanup_lock:
            dal = getattr(self, "_dal", None)
            if dal is not None:
                dal.stop()
                self._dal = None
            shutil.rmtree(self._folder, ignore_errors=True)
            shutil.rmtree(self._ipc, ignore_errors=True)
            if self._ipc_fd is not None:
                os.close(self._ipc_fd)
                self._ipc_fd = None


def _ipc_parent() -> str | None:
    """Where a runtime's socket folder is made: /dev/shm when this process may, else the temp folder."""
    if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK | os.X_OK):
        return str(SHARED_MEMORY)
    return None


class RuntimePool:
    """The live runtimes of a gateway, at most `max_runtimes`, closed after `idle_s` without a round,
    plus `spares` spares started with `spare_limits` (none without `spare_limits`, or with 0)."""

    def __init__(
        self,
        runner: Runner,
        *,
        max_result_bytes: int,
        spare_limits: SandboxLimits | None,
        idle_s: float = 60.0,
        max_runtimes: int = 4,
        spares: int = 1,
        warm_spares: bool = True,
    ) -> None:
        self._runner = runner
        self._max_result_bytes = max_result_bytes
        self._spare_limits = spare_limits
        self._idle_s = idle_s
        self._max = max_runtimes
        self._runtimes: dict[RuntimeKey, JobRuntime] = {}
        self._spare_count = spares if spare_limits is not None else 0
        self._spares: list[JobRuntime] = []
        self._warm_spares = warm_spares
        self._closers: list[threading.Thread] = []

    @property
    def spares(self) -> tuple[JobRuntime, ...]:
        """The spares booted now, waiting for a job."""
        return tuple(self._spares)

    def _start(self, limits: SandboxLimits, *, warm: bool = False) -> JobRuntime:
        return JobRuntime(self._runner, limits, max_result_bytes=self._max_result_bytes, warm=warm)

    def _refresh_spare(self) -> None:
        """Keep `spares` live spares, each with at least half of its wall clock left."""
        now = time.monotonic()
        for spare in list(self._spares):
            if not spare.alive or now - spare.started_at > spare.limits.wall_seconds / 2:
                self._close(spare)
                self._spares.remove(spare)
        while self._spare_limits is not None and len(self._spares) < self._spare_count:
            # Warm: the spare has time to spare, so it imports OpenDP too (a plain job never needs it).
            self._spares.append(self._start(self._spare_limits, warm=self._warm_spares))

    def get(
        self,
        key: RuntimeKey,
        limits: SandboxLimits,
        grants: Mapping[str, DatasetGrant],
        access_log: Path | None,
        on_access: Callable[[str], None] | None = None,
    ) -> JobRuntime:
        """The runtime of this job, started (or taken from the spare) and given its grant if new."""
        runtime = self._runtimes.get(key)
        if runtime is not None:
            return runtime
        self.reap()
        while len(self._runtimes) >= self._max:
            oldest = min(self._runtimes, key=lambda k: self._runtimes[k].last_used)
            self.discard(oldest)
        spare = next((s for s in self._spares if s.alive and s.limits == limits), None)
        if spare is not None:
            self._spares.remove(spare)
            runtime = spare
        else:
            runtime = self._start(limits)
        try:
            runtime.assign(grants, access_log=access_log, on_access=on_access)
        except BaseException:
            self._close(runtime)
            raise
        # The next spare is started by `reap`, between tasks, so that it never competes with this one.
        self._runtimes[key] = runtime
        return runtime

    def _close(self, runtime: JobRuntime) -> None:
        self._closers = [c for c in self._closers if c.is_alive()]
        self._closers.append(runtime.close_in_background())

    def discard(self, key: RuntimeKey) -> None:
        runtime = self._runtimes.pop(key, None)
        if runtime is not None:
            self._close(runtime)

    def stop_job(self, job_id: str) -> int:
        """End the sandboxes of the job's runtimes now (its job was cancelled); returns how many. Safe to
        call from another thread while a round runs: the round fails, and its task discards them."""
        stopped = [runtime for key, runtime in list(self._runtimes.items()) if key.job_id == job_id]
        for runtime in stopped:
            runtime.stop()
        return len(stopped)

    def job_ids(self) -> set[str]:
        """The jobs this pool keeps a runtime for."""
        return {key.job_id for key in self._runtimes}

    def end_job(self, job_id: str) -> None:
        """End the job's runtimes and forget them (its job has ended)."""
        for key in [k for k in self._runtimes if k.job_id == job_id]:
            self._runtimes[key].stop()
            self.discard(key)

    def reap(self) -> None:
        now = time.monotonic()
        for key in [k for k, r in self._runtimes.items() if now - r.last_used > self._idle_s]:
            log.info("closing the runtime of job %s after %.0f s idle", key.job_id, self._idle_s)
            self.discard(key)
        self._refresh_spare()

    def close_all(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Close every runtime and the spare, together, waiting at most about `wait_s` in all."""
        runtimes = [*self._runtimes.values(), *self._spares]
        self._runtimes.clear()
        self._spares = []
        for runtime in runtimes:
            self._close(runtime)
        deadline = time.monotonic() + wait_s
        for closer in self._closers:
            closer.join(timeout=max(0.0, deadline - time.monotonic()))
