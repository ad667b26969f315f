"""Who is calling: sign-in with a kit, with a password, and the bearer secrets they yield.

A kit signs in by proof of key possession: a signed, single-use, short-lived nonce yields a bearer
token. Identity (name, org, role) comes only from the verified certificate; the token is stored hashed
and bound to the certificate's fingerprint. Sign-in also records the user's org and role, which a
password session or an API token then authenticates as: a user gets either only after signing in
with the kit at least once, and never with an identity taken from the request. Failed attempts
slow down the client address they come from, never the identity (`rate_limit.py`).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

from cryptography import x509
from sqlalchemy import delete
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.core.errors import AuthenticationFailed, PermissionDenied
from custos.core.identity import Identity, ParticipantKind, Role
from custos.core.ids import new_id
from custos.core.wire import (
    API_TOKEN_PREFIX,
    ApiToken,
    ApiTokenCreate,
    Challenge,
    ChallengeRequest,
    TokenGrant,
    TokenRequest,
    auth_message,
)
from custos.orchestrator.services.api_tokens import ApiTokenService
from custos.orchestrator.services.passwords import PasswordService
from custos.orchestrator.services.rate_limit import FailedSignIns, PasswordAttempt
from custos.orchestrator.services.secret_tokens import new_secret, secret_hash
from custos.orchestrator.services.sessions import OpenedSession, SessionService
from custos.orchestrator.services.trust import Trust
from custos.orchestrator.settings import OrchestratorSettings
from custos.orchestrator.tables import AuthChallenge, AuthToken, Gateway, Org, User
from custos.pki.certs import fingerprint, load_certificate_pem
from custos.pki.verify import verify_signature

T = TypeVar("T")

# One answer for a wrong password, a name without a password and an unknown name: which of them it
# was is none of the caller's business.
WRONG_PASSWORD = "wrong name or password; a user sets a password with `custos password set --kit KIT`"  # noqa: S105


class Credential(StrEnum):
    """What a request was authenticated by."""

    KIT_TOKEN = "kit_token"  # noqa: S105 - names, not secrets
    API_TOKEN = "api_token"  # noqa: S105
    SESSION = "session"


@dataclass(frozen=True)
class Caller:
    identity: Identity
    fingerprint: str
    credential: Credential = Credential.KIT_TOKEN


class Transactions(Protocol):
    """Runs a function in one database transaction (the orchestrator's `Services`)."""

    def run(self, fn: Callable[[Session], T]) -> T: ...


class BadSignature(AuthenticationFailed):
    """A kit sign-in whose signature did not verify, for the certificate of `account`."""

    def __init__(self, account: str, message: str) -> None:
        super().__init__(message)
        self.account = account


def account_name(name: str) -> str:
    """The account a typed name stands for: participant names are NFKC-normalised and case-folded."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def _user_caller(user: User, credential: Credential) -> Caller:
    return Caller(Identity(user.name, user.org, Role(user.role)), user.fingerprint, credential)


class AuthService:
    def __init__(
        self, root: x509.Certificate, settings: OrchestratorSettings, clock: Clock, trust: Trust
    ) -> None:
        self._root = root
        self._trust = trust
        self._settings = settings
        self._clock = clock
        self.failures = FailedSignIns(settings, clock)
        self.passwords = PasswordService(settings, clock)
        self.sessions = SessionService(settings, clock)
        self.api_tokens = ApiTokenService(settings, clock)

    # --- kit: proof of key possession -------------------------------------------------------------

    def _verified(self, session: Session, pem: str) -> tuple[x509.Certificate, Identity]:
        """A certificate of the project's CA, valid now, and not on the revocation list in force."""
        cert = load_certificate_pem(pem)
        return cert, self._trust.verify(session, cert)

    def _revoked(self, session: Session, serial: str | None) -> bool:
        crl = self._trust.revocations(session)
        return crl is not None and serial is not None and int(serial, 16) in crl.revoked

    def challenge(self, session: Session, request: ChallengeRequest) -> Challenge:
        cert, _ = self._verified(session, request.certificate_pem)
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

    def sign_in_with_kit(self, tx: Transactions, request: TokenRequest, address: str) -> TokenGrant:
        """Spend the challenge, then issue a token if the signature verifies. Each step commits on
        its own, so a refusal spends the challenge. A signature that does not verify is counted
        against the client `address` (BadSignature), or refused with SignInRateLimited if that
        address has too many such failures. One that verifies is never refused for failures: the
        certificate is public, so whoever has it could otherwise lock its owner out."""
        nonce, fp = tx.run(lambda s: self.consume_challenge(s, request))
        try:
            return tx.run(lambda s: self.token(s, request, nonce, fp))
        except BadSignature as exc:
            who = exc.account
            tx.run(lambda s: self.failures.count_kit_failure(s, address, who))
            raise

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
        """Issue a token once the signature over the consumed challenge verifies; raise BadSignature
        if it does not. A user's kit sign-in lifts a lock of the user's password (rate_limit.py)."""
        cert, identity = self._verified(session, request.certificate_pem)
        serial = format(cert.serial_number, "x")
        now = self._clock()
        try:
            signature = base64.b64decode(request.signature, validate=True)
            verify_signature(cert, auth_message(request.challenge_id, nonce, fp), signature)
        except ValueError as exc:
            raise BadSignature(identity.name, "the signature is not valid base64") from exc
        except AuthenticationFailed as exc:
            raise BadSignature(identity.name, exc.message) from exc
        token = new_secret()
        expires = now + timedelta(seconds=self._settings.token_ttl_s)
        session.execute(delete(AuthToken).where(AuthToken.expires_at < now))
        session.add(
            AuthToken(
                token_hash=secret_hash(token),
                fingerprint=fp,
                name=identity.name,
                org=identity.org,
                role=identity.role.value,
                expires_at=expires,
                cert_serial=serial,
            )
        )
        self._register(session, identity, fp, serial)
        if identity.kind is ParticipantKind.USER:
            self.failures.lift_account(session, account_name(identity.name))
        return TokenGrant(
            token=token, expires_at=expires, name=identity.name, org=identity.org, role=identity.role.value
        )

    def _register(self, session: Session, identity: Identity, fp: str, serial: str) -> None:
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
                        cert_serial=serial,
                    )
                )
            else:
                user.org, user.role, user.fingerprint, user.last_seen, user.cert_serial = (
                    identity.org,
                    identity.role.value,
                    fp,
                    now,
                    serial,
                )

    # --- passwords and sessions -------------------------------------------------------------------

    def set_password(self, tx: Transactions, caller: Caller, password: str) -> None:
        """Set or change the caller's password and end the caller's browser sessions. Only a user
        signed in with the kit may: a session or an API token must not be able to take over the
        account by changing its password."""
        if caller.identity.kind is not ParticipantKind.USER:
            raise PermissionDenied("only users sign in with a password; gateways use their kit")
        if caller.credential is not Credential.KIT_TOKEN:
            raise PermissionDenied(
                "a password can be set only when signed in with your kit "
                "(`custos password set --kit KIT`), not with a browser session or an API token"
            )
        name = caller.identity.name
        hashed = self.passwords.hash(password)  # slow: outside the transaction

        def store(session: Session) -> None:
            self.passwords.store(session, name, hashed)
            self.sessions.end_all(session, name)

        tx.run(store)

    def login(self, tx: Transactions, name: str, password: str, address: str) -> tuple[Caller, OpenedSession]:
        """Open a browser session for `name` if `password` is its password. Raises SignInRateLimited
        (whatever the password) when the client `address` has too many failures, or the account
        has from all addresses until its user signs in with the kit; else AuthenticationFailed with
        WRONG_PASSWORD. The attempt is counted, and committed, before the password is checked
        (outside any transaction: Argon2 is slow), and forgotten only if it succeeds."""
        account = account_name(name)
        attempt, stored = tx.run(lambda s: self._begin_password_attempt(s, account, address))
        if not self.passwords.matches(stored, password) or stored is None:
            raise AuthenticationFailed(WRONG_PASSWORD)  # the attempt stays counted
        rehashed = self.passwords.hash(password) if self.passwords.needs_rehash(stored) else None

        def open_session(session: Session) -> tuple[Caller, OpenedSession]:
            user = session.get(User, account)
            if user is None:  # removed since the password was read
                raise AuthenticationFailed(WRONG_PASSWORD)
            self.failures.forget_password_attempt(session, attempt)
            if rehashed is not None:
                self.passwords.store(session, account, rehashed)
            return _user_caller(user, Credential.SESSION), self.sessions.open(session, account)

        return tx.run(open_session)

    def _begin_password_attempt(
        self, session: Session, account: str, address: str
    ) -> tuple[PasswordAttempt, str | None]:
        attempt = self.failures.begin_password_attempt(session, address, account)
        return attempt, self.passwords.stored_hash(session, account)

    def end_session(self, session: Session, cookie: str) -> None:
        self.sessions.end(session, cookie)

    # --- API tokens --------------------------------------------------------------------------------

    def create_api_token(self, session: Session, caller: Caller, request: ApiTokenCreate) -> ApiToken:
        """A new API token for the calling user. An API token may not make another: one that leaked
        could otherwise mint successors that outlive its revocation."""
        if caller.credential is Credential.API_TOKEN:
            raise PermissionDenied(
                "an API token cannot create another; sign in with your kit "
                "(`custos token create --kit KIT`) or with your password in the portal"
            )
        return self.api_tokens.create(session, caller.identity.name, request)

    # --- who is calling ---------------------------------------------------------------------------

    def caller(self, session: Session, token: str) -> Caller:
        """The caller of a bearer token: a kit token, or an API token of a user."""
        row = session.get(AuthToken, secret_hash(token))
        if (
            row is not None
            and row.expires_at >= self._clock()
            and not self._revoked(session, row.cert_serial)
        ):
            return Caller(Identity(row.name, row.org, Role(row.role)), row.fingerprint)
        if token.startswith(API_TOKEN_PREFIX):
            user = self.api_tokens.user(session, token)
            if user is not None and not self._revoked(session, user.cert_serial):
                return _user_caller(user, Credential.API_TOKEN)
        raise AuthenticationFailed("the token is unknown, revoked or expired; sign in again")

    def session_caller(self, session: Session, cookie: str) -> Caller:
        user = self.sessions.user(session, cookie)
        if user is None or self._revoked(session, user.cert_serial):
            raise AuthenticationFailed("the session is unknown, ended or expired; sign in again")
        return _user_caller(user, Credential.SESSION)
