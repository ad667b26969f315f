"""Users as admins see them, their web passwords and API tokens, and the audit trail as the API returns it."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from custos.core.wire_base import WireModel

API_TOKEN_PREFIX = "cst_"  # noqa: S105 - how an API token begins, not a secret


class PasswordSet(WireModel):
    """A user's new web password. Accepted only from a user signed in with the kit."""

    password: str = Field(min_length=12, max_length=1024)


class PasswordLogin(WireModel):
    name: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class ApiTokenCreate(WireModel):
    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@-]*$",
        description="a label to recognise the token by, e.g. laptop",
    )
    days: int = Field(default=90, ge=1, le=365, description="days until the token expires")


class ApiTokenPublic(WireModel):
    id: str
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None


class ApiToken(ApiTokenPublic):
    """A new API token. `token` is shown this once: the orchestrator keeps only its hash."""

    token: str = Field(description=f"{API_TOKEN_PREFIX} followed by 43 random URL-safe characters")


class AuditEventPublic(WireModel):
    """One line of the orchestrator's audit trail, as the audit API returns it."""

    line: int
    id: str
    time: datetime
    user: str
    action: str
    job: str | None
    peer: str | None
    message: str


class UserPublic(WireModel):
    name: str
    org: str
    role: str
    last_seen: datetime
