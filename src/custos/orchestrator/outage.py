"""A database outage answers 503 with the reason, and logs one line per outage, not a traceback per
request.

An error of the database connection (SQLAlchemy's `OperationalError`: refused, cut, unable to open the
file; or any error that invalidated the connection) means the database is unavailable, not that the
request was wrong: the caller may try again. The first such error logs one line; the next ones are
counted, and the first transaction that commits afterwards logs the end of the outage with the count.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger("custos.orchestrator")

REASON_CHARS = 200


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached or opened (rather than refused a statement)."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def one_line_reason(exc: DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc.orig or exc).__name__
    return reason[:REASON_CHARS]


class DatabaseOutage:
    """Whether the database is down, as the requests found it; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refused = 0

    @property
    def refused(self) -> int:
        """Requests refused during the current outage (0: none under way)."""
        return self._refused

    def unavailable(self, exc: DBAPIError) -> str:
        """Note a request the outage refused; the detail to answer it with."""
        reason = one_line_reason(exc)
        with self._lock:
            first = self._refused == 0
            self._refused += 1
        if first:
            log.error("the database is unavailable: %s (answering 503 until it is back)", reason)
        return f"the database is unavailable: {reason}"

    def available(self) -> None:
        """A transaction committed: the outage, if one was under way, is over."""
        if self._refused == 0:
            return
        with self._lock:
            refused, self._refused = self._refused, 0
        if refused:
            log.warning("the database is back; %d request(s) were refused while it was unavailable", refused)
