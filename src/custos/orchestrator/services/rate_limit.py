"""Failed sign-ins, counted per client address (and for passwords per account as well), kept in the
database so that every worker counts the same attempts.

Sign-in is limited so that it cannot be turned against the one who holds the key or knows the
password (docs/threats.md, E43). Certificates are public (every approval carries its signer's), and
anyone may type a name, so nothing an attacker can do on their own locks an identity:

- **Kit.** A challenge is good for one answer: a wrong signature spends that challenge and nothing
  else. Wrong signatures are counted against the client address; an address with
  `sign_in_max_failures` of them within `sign_in_window_s` gets 429 for the next wrong one instead of
  401. A signature that verifies is never refused for failures, from any address: it cannot be
  guessed, so refusing it would protect nothing and hand a lock to whoever holds the certificate.
- **Password.** An attempt is counted against its client address before it is judged, and an address
  at the limit gets 429 whatever the password, so a throttled guesser learns nothing more. The
  account's failures from every address are counted too: at `password_max_failures_per_account`
  within the window, the account's password sign-in is refused from everywhere, and its user lifts
  that by signing in with the kit (any `custos` command), the factor a guesser does not have.

A success does not erase the failures of the window. If it did, every routine sign-in from an
address shared with a guesser (an office behind one NAT) would hand the guesser a fresh allowance.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.core.errors import RateLimited
from custos.orchestrator.settings import OrchestratorSettings
from custos.orchestrator.tables import SignInFailure

UNKNOWN_ADDRESS = "unknown"


class SignInMethod(StrEnum):
    PASSWORD = "password"  # noqa: S105 - the name of a method, not a secret
    KIT = "kit"


class FailureScope(StrEnum):
    """What a counted failure is held against."""

    ADDRESS = "address"
    ACCOUNT = "account"


def client_address(host: str | None) -> str:
    """The address failures are counted against: the peer's IP address as the orchestrator's server
    sees it (it reads no forwarding header). An IPv6 address counts as its /64 network, which one
    subscriber usually holds whole; an IPv4-mapped one as its IPv4 address."""
    if not host:
        return UNKNOWN_ADDRESS
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        # Not an IP address (an in-process test client): kept if it cannot break a log line.
        return host[:64] if host.isprintable() and "]" not in host else UNKNOWN_ADDRESS
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


class SignInRateLimited(RateLimited):
    """Too many failed sign-ins from one address, or for one account's password (`scope`);
    `retry_at` says when the next attempt is judged. `who` is the name the attempt was for."""

    def __init__(
        self, message: str, *, scope: FailureScope, who: str, retry_at: datetime, retry_after_s: int
    ) -> None:
        super().__init__(message)
        self.scope = scope
        self.who = who
        self.retry_at = retry_at
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class PasswordAttempt:
    """The failures a password attempt was counted as until it is judged: its address's and its account's."""

    ids: tuple[int, int]


class FailedSignIns:
    """Counts failed sign-ins and refuses the sources and accounts over their limits.

    A password attempt is counted as a failure before it is judged, and forgotten if it succeeds, so
    attempts made at the same time, on any worker, all count against each other: a burst of guesses
    sent at once cannot slip through while the slow password hash of the first ones is still running.
    (SQLite serialises the short counting transactions; on PostgreSQL two that overlap within
    milliseconds may both find room, so a burst may exceed the limit by a few.) A kit signature is
    checked in microseconds, so a wrong one is counted after it is judged.
    """

    def __init__(self, settings: OrchestratorSettings, clock: Clock) -> None:
        self._per_address = settings.sign_in_max_failures
        self._per_account = settings.password_max_failures_per_account
        self._window = timedelta(seconds=settings.sign_in_window_s)
        self._clock = clock

    def count_kit_failure(self, session: Session, address: str, who: str) -> None:
        """Count a signature that did not verify against `address`. Raise SignInRateLimited,
        counting nothing more, if the address already has its fill of failures."""
        now = self._clock()
        self._check(session, FailureScope.ADDRESS, address, SignInMethod.KIT, who, now)
        self._count(session, FailureScope.ADDRESS, address, SignInMethod.KIT, now)

    def begin_password_attempt(self, session: Session, address: str, account: str) -> PasswordAttempt:
        """Count a password attempt for `account` from `address`, for `forget_password_attempt` to
        take back if it succeeds. Raise SignInRateLimited, counting nothing, if the address or the
        account may not try now."""
        now = self._clock()
        self._check(session, FailureScope.ADDRESS, address, SignInMethod.PASSWORD, account, now)
        self._check(session, FailureScope.ACCOUNT, account, SignInMethod.PASSWORD, account, now)
        ids = (
            self._count(session, FailureScope.ADDRESS, address, SignInMethod.PASSWORD, now),
            self._count(session, FailureScope.ACCOUNT, account, SignInMethod.PASSWORD, now),
        )
        return PasswordAttempt(ids)

    def forget_password_attempt(self, session: Session, attempt: PasswordAttempt) -> None:
        """The attempt succeeded, so it was no failure. The window's earlier failures stay."""
        session.execute(delete(SignInFailure).where(SignInFailure.id.in_(attempt.ids)))

    def lift_account(self, session: Session, account: str) -> None:
        """The account's user proved the kit: forget the account's password failures, so that its
        password works again from any address that is not throttled itself."""
        session.execute(
            delete(SignInFailure).where(
                SignInFailure.scope == FailureScope.ACCOUNT.value,
                SignInFailure.key == account,
                SignInFailure.method == SignInMethod.PASSWORD.value,
            )
        )

    def _check(
        self,
        session: Session,
        scope: FailureScope,
        key: str,
        method: SignInMethod,
        who: str,
        now: datetime,
    ) -> None:
        limit = self._per_address if scope is FailureScope.ADDRESS else self._per_account
        # An attempt refused here is not counted, so this reads about `limit` rows at most.
        times = session.scalars(
            select(SignInFailure.at)
            .where(
                SignInFailure.scope == scope.value,
                SignInFailure.key == key,
                SignInFailure.method == method.value,
                SignInFailure.at > now - self._window,
            )
            .order_by(SignInFailure.at)
        ).all()
        if len(times) < limit:
            return
        # The attempt is judged again once fewer than `limit` failures remain in the window.
        retry_at = times[len(times) - limit] + self._window
        wait = max(1, math.ceil((retry_at - now).total_seconds()))
        when = f"try again after {retry_at.strftime('%Y-%m-%d %H:%M:%S')} UTC (in {wait} s)"
        if scope is FailureScope.ADDRESS:
            message = f"too many failed sign-ins from {key}; {when}"
        else:
            message = (
                f"too many failed password sign-ins for {key} from several addresses; sign in with "
                f"your kit (any `custos` command) to lift this, or {when}"
            )
        raise SignInRateLimited(message, scope=scope, who=who, retry_at=retry_at, retry_after_s=wait)

    def _count(
        self, session: Session, scope: FailureScope, key: str, method: SignInMethod, now: datetime
    ) -> int:
        session.execute(delete(SignInFailure).where(SignInFailure.at <= now - self._window))
        row = SignInFailure(scope=scope.value, key=key, method=method.value, at=now)
        session.add(row)
        session.flush()
        return row.id
