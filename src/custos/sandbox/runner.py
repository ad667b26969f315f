"""The sandbox seam: what a gateway asks for (`SandboxRequest`), what it gets back (`SandboxResult`),
and the `Runner` protocol every sandbox implementation meets."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from custos.sandbox.limits import SandboxLimits

# stdout and stderr keep only their last 64 KiB: a computation cannot flood the gateway's memory,
# and the end of a log is where the error is.
STREAM_TAIL_BYTES = 64 << 10


@dataclass(frozen=True)
class Bind:
    """A host path made visible inside the sandbox at `target` (read-only unless `writable`)."""

    host: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class SandboxRequest:
    """One run: `python <argv...>` inside the sandbox.

    `argv` are the arguments after the interpreter, e.g.
    `["-m", "custos.computations.runtime", "/task/input.json", "/output"]` (`-m module`, `-c code` or
    a script path). `output_dir` is the host folder that receives what the computation left in
    `/output` (a filesystem of the output limit's size inside the sandbox) once the run is over, unless
    it broke an output limit; it should start empty. `env` is added to a cleaned environment. Setting
    `stop` ends the run (every process of it) as a broken limit would, with the failure STOPPED.
    """

    argv: Sequence[str]
    output_dir: Path
    binds: Sequence[Bind] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    stop: threading.Event | None = None


# The failure of a run that its `stop` event ended (the gateway's job was cancelled).
STOPPED = "the run was stopped by the gateway"


@dataclass(frozen=True)
class SandboxResult:
    """How a run ended. `failure` is None on success, otherwise one sentence naming what went wrong
    (a limit that was broken, or the exit code). `stdout` and `stderr` hold the last 64 KiB of each.
    `limit` says whether `failure` names a broken limit (the sandbox's words, not the code's)."""

    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    failure: str | None
    limit: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None


class Runner(Protocol):
    """Runs one Python computation in isolation.

    For every call to `run`, an implementation MUST ensure that the computation:
    - has no network: no interface but its own loopback, no name resolution, no host sockets other
      than unix sockets inside a listed bind;
    - sees a read-only system (the interpreter and its libraries), a private `/tmp` limited to
      `limits.tmp_bytes`, a private `/output` limited to `limits.output_bytes` (every byte written
      counts), and only the listed binds; no other host file, no key, no kit, no other run's folders;
    - starts from a cleaned environment (`request.env` plus a few fixed variables), never the caller's;
    - has no privileges: no capabilities, no_new_privs set, no setuid, mount, ptrace or new namespaces;
    - is held to every limit in `request.limits` (memory, processes and CPU time for the whole run
      where the host allows it), and a breach ends the run with a `failure` naming it;
    - is ended, with every process of it, within a second of `request.stop` being set (failure STOPPED);
    - leaves no process behind: every process the run started is gone when `run` returns.

    `run` raises SandboxError only when the sandbox itself cannot be set up; everything the
    computation does, including breaking a limit, is reported in the returned SandboxResult.
    """

    def run(self, request: SandboxRequest) -> SandboxResult:
        """Run `request` to the end (or until a limit stops it) and report how it ended."""
        ...
