"""Single-use nonces: issued by the broker, each taken once, within its lifetime."""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta

from custos.core.clock import Clock

MAX_OUTSTANDING = 10_000


class NonceBook:
    def __init__(self, clock: Clock, ttl_s: float = 60.0) -> None:
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_s)
        self._issued: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, datetime]:
        nonce, expires = secrets.token_urlsafe(24), self._clock() + self._ttl
        with self._lock:
            self._drop_expired()
            if len(self._issued) >= MAX_OUTSTANDING:
                self._issued.pop(next(iter(self._issued)))
            self._issued[nonce] = expires
        return nonce, expires

    def take(self, nonce: str) -> bool:
        """True once for a nonce issued here and not yet expired; False ever after."""
        with self._lock:
            expires = self._issued.pop(nonce, None)
        return expires is not None and self._clock() < expires

    def _drop_expired(self) -> None:
        now = self._clock()
        for nonce in [n for n, e in self._issued.items() if e <= now]:
            del self._issued[nonce]
