"""Signing in: the challenge a caller answers with its certificate's key, the bearer token it gets, and
who the orchestrator took it for."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from custos.core.wire_base import WireModel

AUTH_DOMAIN = b"custos-auth-v1"


def auth_message(challenge_id: str, nonce: str, fingerprint: str) -> bytes:
    """The bytes a caller signs to prove it holds its certificate's key."""
    return b"\n".join([AUTH_DOMAIN, challenge_id.encode(), nonce.encode(), fingerprint.encode()])


class ChallengeRequest(WireModel):
    certificate_pem: str = Field(max_length=16_384)


class Challenge(WireModel):
    challenge_id: str
    nonce: str
    expires_at: datetime


class TokenRequest(WireModel):
    challenge_id: str = Field(max_length=128)
    certificate_pem: str = Field(max_length=16_384)
    signature: str = Field(max_length=1_024, description="base64 signature of auth_message(...)")


class TokenGrant(WireModel):
    token: str
    expires_at: datetime
    name: str
    org: str
    role: str


class Me(WireModel):
    name: str
    org: str
    role: str
    fingerprint: str
