"""Gateway settings, passed in at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from custos.gateway.crash import CrashHook
from custos.sandbox.limits import SandboxLimits


@dataclass(frozen=True)
class GatewaySettings:
    state_dir: Path
    poll_wait_s: float = 20.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    max_result_bytes: int = 16 << 20
    # How often the agent fetches the project's revocation list again.
    crl_refresh_s: float = 30.0
    # A job's sandboxed runtime is kept between rounds, and closed after this long without one.
    runtime_idle_s: float = 60.0
    # Keep one sandbox booted ahead of need, so a job's first round pays no start.
    warm_spare: bool = True
    # The most any task may ask for at this site; a spec's resources are capped by these.
    sandbox_caps: SandboxLimits = field(default_factory=SandboxLimits)
    # A test hook, never set in production: the step of a task at which the gateway kills (or stops)
    # itself (see `custos.gateway.crash`). Read once at start from CUSTOS_TEST_CRASH_AT.
    test_crash_at: CrashHook | None = None
