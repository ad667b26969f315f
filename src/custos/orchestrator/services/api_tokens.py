"""API tokens: long-lived bearer secrets a user makes for the SDK, shown once and stored as a hash.

A token authenticates as its user with the org and role recorded at the user's last kit sign-in, so
a token never outlasts a change of role made by re-issuing the user's kit.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.core.errors import Conflict, NotFound
from custos.core.ids import new_id
from custos.core.wire import API_TOKEN_PREFIX, ApiToken, ApiTokenCreate, ApiTokenPublic
from custos.orchestrator.services.secret_tokens import new_secret, secret_hash
from custos.orchestrator.settings import OrchestratorSettings
from custos.orchestrator.tables import ApiTokenRecord, User

# `last_used_at` is written at most this often per token, so that a busy token does not turn every
# read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _public(row: ApiTokenRecord) -> ApiTokenPublic:
    return ApiTokenPublic(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
    )


class ApiTokenService:
    def __init__(self, settings: OrchestratorSettings, clock: Clock) -> None:
        self._max_per_user = settings.api_tokens_per_user
        self._clock = clock

    def create(self, session: Session, user_name: str, request: ApiTokenCreate) -> ApiToken:
        now = self._clock()
        owned = ApiTokenRecord.user_name == user_name
        session.execute(delete(ApiTokenRecord).where(owned, ApiTokenRecord.expires_at < now))
        live = session.scalar(select(func.count()).select_from(ApiTokenRecord).where(owned)) or 0
        if live >= self._max_per_user:
            raise Conflict(
                f"{user_name} already holds {live} API tokens, the most allowed; "
                "revoke one with `custos token revoke` first"
            )
        token = new_secret(API_TOKEN_PREFIX)
        row = ApiTokenRecord(
            id=new_id("tok"),
            token_hash=secret_hash(token),
            user_name=user_name,
            name=request.name,
            created_at=now,
            expires_at=now + timedelta(days=request.days),
            last_used_at=None,
        )
        session.add(row)
        return ApiToken(token=token, **_public(row).model_dump())

    def list_tokens(self, session: Session, user_name: str) -> list[ApiTokenPublic]:
        rows = session.scalars(
            select(ApiTokenRecord)
            .where(ApiTokenRecord.user_name == user_name)
            .order_by(ApiTokenRecord.created_at, ApiTokenRecord.id)
        )
        return [_public(row) for row in rows]

    def revoke(self, session: Session, user_name: str, token_id: str) -> ApiTokenPublic:
        row = session.get(ApiTokenRecord, token_id)
        # Someone else's token gets the same answer as none at all: ids are not for probing.
        if row is None or row.user_name != user_name:
            raise NotFound(f"unknown API token {token_id}; `custos token list` shows yours")
        public = _public(row)
        session.delete(row)
        return public

    def user(self, session: Session, token: str) -> User | None:
        """The user of a live API token, or None for an unknown, revoked or expired one."""
        row = session.scalar(select(ApiTokenRecord).where(ApiTokenRecord.token_hash == secret_hash(token)))
        now = self._clock()
        if row is None or row.expires_at < now:
            return None
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
            row.last_used_at = now
        return session.get(User, row.user_name)
