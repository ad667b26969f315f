"""Gateway settings, passed in at start (from gateway.yaml and the flags of `custos gateway start`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from custos.core.wire import Resources, ResourceSizes, TemplateName
from custos.gateway.config import task_limits
from custos.gateway.crash import CrashHook
from custos.sandbox.limits import SandboxLimits


@dataclass(frozen=True)
class GatewaySettings:
    state_dir: Path
    poll_wait_s: float = 20.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    # Until the first connection the wait between tries stays short: at a site's start the
    # orchestrator is often still starting too, and a refused loopback or LAN connect costs nothing.
    backoff_start_max_s: float = 0.5
    max_result_bytes: int = 16 << 20
    # How often the agent fetches the project's revocation list again.
    crl_refresh_s: float = 30.0
    # A job's sandboxed runtime is kept between rounds, and closed after this long without one.
    runtime_idle_s: float = 60.0
    # While a task runs, the agent asks the orchestrator this often whether its job still wants it
    # (a cancelled job's sandbox is ended at once).
    task_check_s: float = 1.0
    # Sandboxes kept booted ahead of need, so a job's first round pays no start (0: none).
    warm_spares: int = 1
    # Whether the spares import OpenDP ahead of need: only where a policy uses differential privacy
    # (it is most of a spare's memory); a DP job on a cold spare pays the import in its first round.
    warm_dp: bool = True
    # Job runtimes kept live at once; the least recently used is closed to make room.
    tasks_in_flight: int = 4
    # The most any task may ask for at this site: a spec asking for more is refused.
    sandbox_caps: SandboxLimits = field(default_factory=SandboxLimits)
    # What a spec's `template` (small, medium, large) means here; a size left out is the built-in one
    # cut down to the caps.
    templates: Mapping[TemplateName, ResourceSizes] = field(default_factory=dict)
    # A test hook, never set in production: the step of a task at which the gateway kills (or stops)
    # itself (see `custos.gateway.crash`). Read once at start from CUSTOS_TEST_CRASH_AT.
    test_crash_at: CrashHook | None = None

    def limits_for(self, resources: Resources) -> SandboxLimits:
        """A task's sandbox limits; raises PolicyDenied naming the cap a spec asks more than."""
        return task_limits(resources, self.sandbox_caps, self.templates)
