"""Audit trail heads: what a gateway reports of its trail, and the anchors the orchestrator keeps."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from custos.core.wire_base import WireModel

_SHA256_HEX = r"^[0-9a-f]{64}$"
ORCHESTRATOR_TRAIL = "orchestrator"


class AuditHead(WireModel):
    """A trail's head: `index` events (as `custos audit verify` counts them), the last one's sha256."""

    index: int = Field(ge=0)
    hash: str | None = Field(default=None, pattern=_SHA256_HEX)


class AuditAnchorPublic(WireModel):
    """The newest head the orchestrator has seen of one trail: a gateway's (by its name) or its own
    (`orchestrator`). A trail that holds fewer events, or another line at `index`, was cut or rewritten."""

    trail: str
    index: int
    hash: str
    seen_at: datetime
