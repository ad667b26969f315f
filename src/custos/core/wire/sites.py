"""Sites and their health: the heartbeat a gateway's poll carries, and each gateway as users see it."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from custos.core.wire.audit import AuditHead
from custos.core.wire.budget import LedgerReport
from custos.core.wire_base import WireModel

# Every size is bounded: task ids a gateway lists as held, and the text of its version.
MAX_HELD_TASKS = 1000


# A poll's number is kept in a signed 64-bit column (`gateway_polls.poll`).
MAX_POLL_NUMBER = 2**63 - 1


class Heartbeat(WireModel):
    """What a gateway says about itself with every poll (and, while it works on a task, on its own)."""

    version: str = Field(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z.+_-]+$")
    tasks_in_flight: int = Field(ge=0, le=MAX_HELD_TASKS)
    audit_head: AuditHead | None = Field(default=None, description="the head of the gateway's audit trail")
    ledger: LedgerReport | None = Field(default=None, description="its privacy budget ledger, if it has one")


class PollRequest(WireModel):
    """A gateway's long poll for its next task (`POST /api/v1/gateway/tasks/next`)."""

    wait: float = Field(default=20.0, ge=0, le=60)
    poll: int | None = Field(
        default=None, ge=0, le=MAX_POLL_NUMBER, description="the poll's number; each gateway's increase"
    )
    held: list[str] = Field(default_factory=list, max_length=MAX_HELD_TASKS)
    running: list[str] = Field(
        default_factory=list, max_length=64, description="jobs with a runtime at the gateway"
    )
    heartbeat: Heartbeat | None = None


class SitePublic(WireModel):
    """One gateway as the orchestrator last saw it. `online`: seen within `offline_after_s`."""

    name: str
    org: str
    version: str | None = Field(description="the Custos release it runs; none before its first heartbeat")
    last_seen: datetime
    online: bool
    offline_after_s: float = Field(description="the threshold: not seen for this long means offline")
    tasks_in_flight: int
