"""Failed sign-ins per account, kept in the database so that every worker counts the same attempts.

An account that has failed `sign_in_max_failures` times within `sign_in_window_s` is refused (429)
until the oldest of those failures leaves the window, even with the right password or key. Failures
are counted per sign-in method ("password", "kit"), so that strangers guessing a user's password
cannot also lock the user's (or a gateway's) kit out: a kit signature cannot be guessed anyway.

A success does not erase the failures of the window. If it did, every routine sign-in of the real
user would hand a guesser a fresh allowance, and interleaving guesses with sign-ins would let guesses
go on without end. The price: while someone keeps guessing, the real user's password sign-in is
refused as well; the user's kit still signs them in.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.core.errors import CustosError
from custos.orchestrator.settings import OrchestratorSettings
from custos.orchestrator.tables import SignInFailure


class SignInMethod(StrEnum):
    PASSWORD = "password"  # noqa: S105 - the name of a method, not a secret
    KIT = "kit"


class SignInRateLimited(CustosError):
    """Too many failed sign-ins for one account; `retry_at` says when the next attempt is judged."""

    status = 429

    def __init__(self, account: str, retry_at: datetime, retry_after_s: int) -> None:
        super().__init__(
            f"too many failed sign-ins for {account}; try again after "
            f"{retry_at.strftime('%Y-%m-%d %H:%M:%S')} UTC (in {retry_after_s} s)"
        )
        self.account = account
        self.retry_at = retry_at
        self.retry_after_s = retry_after_s


class FailedSignIns:
    """Each attempt is counted as a failure before it is judged, and forgotten if it succeeds. So
    attempts made at the same time, on any worker, all count against each other: a burst of guesses
    sent at once cannot slip through while the slow password hash of the first ones is still running.
    (SQLite serialises the short counting transactions; on PostgreSQL two that overlap within
    milliseconds may both find room, so a burst may exceed the limit by a few.)
    """

    def __init__(self, settings: OrchestratorSettings, clock: Clock) -> None:
        self._max = settings.sign_in_max_failures
        self._window = timedelta(seconds=settings.sign_in_window_s)
        self._clock = clock

    def begin_attempt(self, session: Session, account: str, method: SignInMethod) -> int:
        """Count an attempt of `account` by `method` and return its id for `forget_attempt`. Raise
        SignInRateLimited, counting nothing, if the account may not try now."""
        now = self._clock()
        times = session.scalars(
            select(SignInFailure.at)
            .where(
                SignInFailure.account == account,
                SignInFailure.method == method.value,
                SignInFailure.at > now - self._window,
            )
            .order_by(SignInFailure.at)
        ).all()
        if len(times) >= self._max:
            # The attempt is judged again once fewer than `max` failures remain in the window.
            retry_at = times[len(times) - self._max] + self._window
            wait = max(1, math.ceil((retry_at - now).total_seconds()))
            raise SignInRateLimited(account, retry_at, wait)
        session.execute(delete(SignInFailure).where(SignInFailure.at <= now - self._window))
        row = SignInFailure(account=account, method=method.value, at=now)
        session.add(row)
        session.flush()
        return row.id

    def forget_attempt(self, session: Session, attempt_id: int) -> None:
        """The attempt succeeded, so it was no failure. The window's earlier failures stay."""
        session.execute(delete(SignInFailure).where(SignInFailure.id == attempt_id))
