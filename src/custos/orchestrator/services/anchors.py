"""Audit anchors: the heads of audit trails, kept in the database, away from the trail files.

A gateway reports the head of its trail (`index` events, the last one's hash) with every heartbeat
and result; the orchestrator anchors its own trail's head whenever a gateway is seen and whenever
someone asks for it. Each new head is kept (one row per trail and index). A head that goes back (fewer
events than one anchored) or that names another line at an anchored index means the trail was cut or
rewritten: that is written to the orchestrator's own audit trail (`audit_trail_shortened`,
`audit_trail_rewritten`) and logged, and the anchors are kept as they were.

`custos audit verify --trail FILE --anchored NAME` checks a trail file against the newest anchor.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from custos.audit import AuditTrail, HeadReader, VerifyReport, verify_trail
from custos.core.clock import Clock
from custos.core.errors import NotFound
from custos.core.identity import Identity
from custos.core.wire import ORCHESTRATOR_TRAIL, AuditAnchorPublic, AuditHead
from custos.orchestrator.services.access import check_resource
from custos.orchestrator.tables import AuditAnchor, Gateway
from custos.policy.permissions import Resource

log = logging.getLogger("custos.orchestrator")

# Anchors a listing returns at most: the newest, which cover the trail's end.
MAX_ANCHORS = 10_000


def anchor_public(row: AuditAnchor) -> AuditAnchorPublic:
    return AuditAnchorPublic(trail=row.trail, index=row.index, hash=row.hash, seen_at=row.seen_at)


class AnchorService:
    def __init__(self, clock: Clock, audit: AuditTrail) -> None:
        self._clock = clock
        self._audit = audit
        self._own = HeadReader(audit.path)

    def newest(self, session: Session, trail: str) -> AuditAnchor | None:
        return session.execute(
            select(AuditAnchor).where(AuditAnchor.trail == trail).order_by(AuditAnchor.index.desc()).limit(1)
        ).scalar_one_or_none()

    def record(self, session: Session, trail: str, head: AuditHead) -> None:
        """Keep `head` of `trail` unless it contradicts an anchor, which is reported instead."""
        if head.index == 0 or head.hash is None:
            newest = self.newest(session, trail)
            if newest is not None:
                self._contradicted(trail, "audit_trail_shortened", f"{trail} reports an empty trail; "
                                   f"{newest.index} events were anchored")  # fmt: skip
            return
        newest = self.newest(session, trail)
        if newest is not None and head.index < newest.index:
            self._contradicted(
                trail, "audit_trail_shortened",
                f"{trail} reports {head.index} audit events; {newest.index} were anchored at "
                f"{newest.seen_at.isoformat()}",
            )  # fmt: skip
            return
        same_index = session.get(AuditAnchor, (trail, head.index))
        if same_index is not None:
            if same_index.hash != head.hash:
                self._contradicted(
                    trail, "audit_trail_rewritten",
                    f"{trail} reports another event {head.index} than the one anchored at "
                    f"{same_index.seen_at.isoformat()}",
                )  # fmt: skip
            return
        values = {"trail": trail, "index": head.index, "hash": head.hash, "seen_at": self._clock()}
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(AuditAnchor).values(**values).on_conflict_do_nothing())

    def _contradicted(self, trail: str, action: str, message: str) -> None:
        log.warning("audit anchor: %s", message)
        self._audit.append(user=trail, action=action, message=message)

    def anchor_own(self, session: Session) -> AuditHead:
        """Anchor the orchestrator's own trail at its current head, and return that head."""
        head = self._own.read()
        current = AuditHead(index=head.index, hash=head.hash)
        self.record(session, ORCHESTRATOR_TRAIL, current)
        return current

    def verify_own(self, session: Session, caller: Identity) -> VerifyReport:
        """The orchestrator's own trail checked line by line and against every anchor of it (as
        `custos audit verify --anchored orchestrator` does); for those who may read its anchors."""
        anchors = self.list(session, caller, ORCHESTRATOR_TRAIL)
        return verify_trail(self._audit.path, anchors=[(a.index, a.hash) for a in anchors])

    def list(self, session: Session, caller: Identity, trail: str) -> list[AuditAnchorPublic]:
        """Every anchor of a gateway's trail (for its org's admins and project admins) or of the
        orchestrator's (project admins), oldest first; the newest `MAX_ANCHORS` of a long history."""
        missing = f"no audit anchor for {trail}: no gateway of that name has reported its trail"
        if trail == ORCHESTRATOR_TRAIL:
            check_resource("audit.view", caller, Resource(None, None), missing)
            self.anchor_own(session)
        else:
            gateway = session.get(Gateway, trail)
            if gateway is None:
                raise NotFound(missing)
            check_resource("audit.view", caller, Resource(None, gateway.org), missing)
        rows = session.execute(
            select(AuditAnchor)
            .where(AuditAnchor.trail == trail)
            .order_by(AuditAnchor.index.desc())
            .limit(MAX_ANCHORS)
        ).scalars()
        found = [anchor_public(r) for r in rows]
        if not found:
            raise NotFound(missing)
        return found[::-1]
