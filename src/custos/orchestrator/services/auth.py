"""Sign-in by proof of key possession: a signed, single-use, short-lived nonce yields a bearer token.

Identity (name, org, role) comes only from the verified certificate; the token is stored hashed and
bound to the certificate's fingerprint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from sqlalchemy import delete
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.core.errors import AuthenticationFailed
from custos.core.identity import Identity, ParticipantKind, Role
from custos.core.ids import new_id
from custos.core.wire import Challenge, ChallengeRequest, TokenGrant, TokenRequest, auth_message
from custos.orchestrator.settings import OrchestratorSettings
from custos.orchestrator.tables import AuthChallenge, AuthToken, Gateway, Org, User
from custos.pki.certs import fingerprint, load_certificate_pem
from custos.pki.verify import verify_certificate, verify_signature


@dataclass(frozen=True)
class Caller:
    identity: Identity
    fingerprint: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(self, root: x509.Certificate, settings: OrchestratorSettings, clock: Clock) -> None:
        self._root = root
        self._settings = settings
        self._clock = clock

    def _verified(self, pem: str) -> tuple[x509.Certificate, Identity]:
        cert = load_certificate_pem(pem)
        return cert, verify_certificate(cert, self._root, self._clock())

    def challenge(self, session: Session, request: ChallengeRequest) -> Challenge:
        cert, _ = self._verified(request.certificate_pem)
        now = self._clock()
        session.execute(delete(AuthChallenge).where(AuthChallenge.expires_at < now))
        row = AuthChallenge(
            id=new_id("ch"),
            nonce=secrets.token_urlsafe(32),
            fingerprint=fingerprint(cert),
            expires_at=now + timedelta(seconds=self._settings.challenge_ttl_s),
            used=False,
        )
        session.add(row)
        return Challenge(challenge_id=row.id, nonce=row.nonce, expires_at=row.expires_at)

    def consume_challenge(self, session: Session, request: TokenRequest) -> tuple[str, str]:
        """Mark the challenge used, in its own transaction, so that even a failed attempt spends it.
        Returns the nonce and the certificate fingerprint it was issued for."""
        cert = load_certificate_pem(request.certificate_pem)
        row = session.get(AuthChallenge, request.challenge_id, with_for_update=True)
        fp = fingerprint(cert)
        if (
            row is None
            or row.used
            or row.expires_at < self._clock()
            or not hmac.compare_digest(row.fingerprint, fp)
        ):
            raise AuthenticationFailed("the sign-in challenge is unknown, used or expired; request a new one")
        row.used = True
        return row.nonce, row.fingerprint

    def token(self, session: Session, request: TokenRequest, nonce: str, fp: str) -> TokenGrant:
        """Issue a token once the signature over the consumed challenge verifies."""
        cert, identity = self._verified(request.certificate_pem)
        now = self._clock()
        try:
            signature = base64.b64decode(request.signature, validate=True)
        except ValueError as exc:
            raise AuthenticationFailed("the signature is not valid base64") from exc
        verify_signature(cert, auth_message(request.challenge_id, nonce, fp), signature)
        token = secrets.token_urlsafe(32)
        expires = now + timedelta(seconds=self._settings.token_ttl_s)
        session.execute(delete(AuthToken).where(AuthToken.expires_at < now))
        session.add(
            AuthToken(
                token_hash=token_hash(token),
                fingerprint=fp,
                name=identity.name,
                org=identity.org,
                role=identity.role.value,
                expires_at=expires,
            )
        )
        self._register(session, identity, fp)
        return TokenGrant(
            token=token, expires_at=expires, name=identity.name, org=identity.org, role=identity.role.value
        )

    def _register(self, session: Session, identity: Identity, fp: str) -> None:
        now = self._clock()
        if session.get(Org, identity.org) is None:
            session.add(Org(name=identity.org, created_at=now))
            session.flush()
        if identity.kind is ParticipantKind.GATEWAY:
            gw = session.get(Gateway, identity.name)
            if gw is None:
                session.add(Gateway(name=identity.name, org=identity.org, fingerprint=fp, last_seen=now))
            else:
                gw.org, gw.fingerprint, gw.last_seen = identity.org, fp, now
        elif identity.kind is ParticipantKind.USER:
            user = session.get(User, identity.name)
            if user is None:
                session.add(
                    User(
                        name=identity.name,
                        org=identity.org,
                        role=identity.role.value,
                        fingerprint=fp,
                        last_seen=now,
                    )
                )
            else:
                user.org, user.role, user.fingerprint, user.last_seen = (
                    identity.org,
                    identity.role.value,
                    fp,
                    now,
                )

    def caller(self, session: Session, token: str) -> Caller:
        # Looked up by the SHA-256 of the token, never the token itself: the time a lookup takes can
        # only tell an attacker about hashes, which reveal nothing of a valid token.
        row = session.get(AuthToken, token_hash(token))
        if row is None or row.expires_at < self._clock():
            raise AuthenticationFailed("the token is unknown or expired; sign in again")
        return Caller(Identity(row.name, row.org, Role(row.role)), row.fingerprint)
