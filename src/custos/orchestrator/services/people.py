"""Who has signed in, and what the audit trail says, for the roles allowed to see them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from custos.audit import read_events, select_events
from custos.core.identity import Identity
from custos.core.wire import AuditEventPublic, UserPublic
from custos.orchestrator.services.access import can_see
from custos.orchestrator.tables import Gateway, User
from custos.policy.permissions import Resource

MAX_AUDIT_EVENTS = 5000


class PeopleService:
    def __init__(self, audit_path: Path) -> None:
        self._audit_path = audit_path

    def users(self, session: Session, caller: Identity) -> list[UserPublic]:
        rows = session.execute(select(User).order_by(User.org, User.name)).scalars()
        return [
            UserPublic(name=r.name, org=r.org, role=r.role, last_seen=r.last_seen)
            for r in rows
            if can_see("user.manage", caller, Resource(r.name, r.org))
        ]

    def audit(
        self,
        session: Session,
        caller: Identity,
        *,
        job: str | None,
        user: str | None,
        since: datetime | None,
        limit: int,
        action: str | None = None,
        until: datetime | None = None,
    ) -> list[AuditEventPublic]:
        """The newest `limit` matching events the caller may see: an org admin sees the events of its
        org's users and gateways."""
        orgs = {r.name: r.org for r in session.execute(select(User)).scalars()}
        orgs.update({g.name: g.org for g in session.execute(select(Gateway)).scalars()})
        events = select_events(
            read_events(self._audit_path), job=job, user=user, since=since, action=action, until=until
        )
        visible = [e for e in events if can_see("audit.view", caller, Resource(e.user, orgs.get(e.user)))]
        return [
            AuditEventPublic(
                line=e.line_no,
                id=e.id,
                time=e.time,
                user=e.user,
                action=e.action,
                job=e.job,
                peer=e.peer,
                message=e.message,
            )
            for e in visible[-min(limit, MAX_AUDIT_EVENTS) :]
        ]
