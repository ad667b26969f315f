"""Web passwords, stored as Argon2id hashes.

Hashing and verifying are slow on purpose (tens of milliseconds, tens of MiB), so they run outside any
database transaction: SQLite takes its write lock at BEGIN, and every other writer would wait.
"""

from __future__ import annotations

import secrets
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.orchestrator.settings import OrchestratorSettings
from custos.orchestrator.tables import PasswordHash


class PasswordService:
    def __init__(self, settings: OrchestratorSettings, clock: Clock) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_time_cost,
            memory_cost=settings.password_memory_kib,
            parallelism=settings.password_parallelism,
        )
        self._clock = clock

    @cached_property
    def _dummy_hash(self) -> str:
        # Verified against when a name has no password, so that an unknown name costs the same time
        # as a known one. Its password is random and thrown away: nothing can match it. Made on first
        # use rather than at start, so that an app that never sees a password pays nothing.
        return self._hasher.hash(secrets.token_urlsafe(32))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def stored_hash(self, session: Session, user_name: str) -> str | None:
        row = session.get(PasswordHash, user_name)
        return row.hash if row is not None else None

    def matches(self, stored: str | None, password: str) -> bool:
        """Whether `password` is the one `stored` was made from. Runs Argon2 even when there is no
        stored hash, and then answers False."""
        dummy = self._dummy_hash  # made at the first sign-in of any name, so that one costs the same too
        try:
            self._hasher.verify(stored if stored is not None else dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return stored is not None

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)

    def store(self, session: Session, user_name: str, hashed: str) -> None:
        row = session.get(PasswordHash, user_name)
        now = self._clock()
        if row is None:
            session.add(PasswordHash(user_name=user_name, hash=hashed, updated_at=now))
        else:
            row.hash, row.updated_at = hashed, now
