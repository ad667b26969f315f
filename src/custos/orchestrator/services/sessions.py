"""Browser sessions opened with a password, carried by the `custos_session` cookie.

The cookie holds a random secret, stored only as its hash (see `secret_tokens`). A session lasts
`session_ttl_s` from sign-in and authenticates as the user recorded at the user's last kit sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.orchestrator.services.secret_tokens import new_secret, secret_hash
from custos.orchestrator.settings import OrchestratorSettings
from custos.orchestrator.tables import User, WebSession

SESSION_COOKIE = "custos_session"
# A request authenticated by the cookie that changes state must carry this header set to "1". A
# cross-site form cannot set a header, and a cross-site script may not without a CORS preflight
# this server never grants.
CSRF_HEADER = "X-Custos-Request"
# Methods that change nothing, and so need no such header.
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class OpenedSession:
    token: str
    expires_at: datetime


class SessionService:
    def __init__(self, settings: OrchestratorSettings, clock: Clock) -> None:
        self._ttl = timedelta(seconds=settings.session_ttl_s)
        self._clock = clock

    def open(self, session: Session, user_name: str) -> OpenedSession:
        now = self._clock()
        session.execute(delete(WebSession).where(WebSession.expires_at < now))
        token = new_secret()
        expires = now + self._ttl
        session.add(
            WebSession(token_hash=secret_hash(token), user_name=user_name, created_at=now, expires_at=expires)
        )
        return OpenedSession(token=token, expires_at=expires)

    def user(self, session: Session, token: str) -> User | None:
        """The user of a live session, or None for an unknown, ended or expired one."""
        row = session.get(WebSession, secret_hash(token))
        if row is None or row.expires_at < self._clock():
            return None
        return session.get(User, row.user_name)

    def end(self, session: Session, token: str) -> None:
        session.execute(delete(WebSession).where(WebSession.token_hash == secret_hash(token)))

    def end_all(self, session: Session, user_name: str) -> None:
        session.execute(delete(WebSession).where(WebSession.user_name == user_name))
