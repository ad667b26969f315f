"""The hash-chained, append-only audit trail (docs/threats.md, invariant 6): writer, reader and verifier."""

from custos.audit.events import AuditEvent, read_events, select_events
from custos.audit.head import HeadReader, TrailHead
from custos.audit.trail import AuditTrail
from custos.audit.verify import VerifyReport, verify_trail

__all__ = [
    "AuditEvent",
    "AuditTrail",
    "HeadReader",
    "TrailHead",
    "VerifyReport",
    "read_events",
    "select_events",
    "verify_trail",
]
