"""Wake-ups across orchestrator processes on one PostgreSQL database: LISTEN/NOTIFY.

A transaction that queues work for gateways sends their names on `CHANNEL` (`announce`); PostgreSQL
delivers the notification to every listening session once, and only if, the transaction commits. Each
orchestrator process keeps one `PostgresWakeups` thread that LISTENs and wakes its own waiting polls. A
dropped listening connection is opened again; meanwhile the waiters' periodic re-check hands out work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from custos.orchestrator.notifier import CHANNEL, TaskNotifier

log = logging.getLogger(__name__)

# A notification's payload is at most 8000 bytes; gateway names are at most 64 characters.
_NAMES_PER_NOTIFY = 100
# How long a listening session waits for notifications before it looks whether to stop.
_LISTEN_TICK_S = 1.0
# How long to wait before opening a dropped listening connection again.
_RECONNECT_S = 2.0


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def announce(session: Session, gateways: Iterable[str]) -> None:
    """Send the gateways' names to every orchestrator process once this transaction commits."""
    names = sorted(set(gateways))
    for start in range(0, len(names), _NAMES_PER_NOTIFY):
        payload = ",".join(names[start : start + _NAMES_PER_NOTIFY])
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


class PostgresWakeups:
    """A thread that LISTENs on `CHANNEL` and wakes this process's waiting polls."""

    def __init__(self, url: str, notifier: TaskNotifier) -> None:
        # psycopg's own URL: without SQLAlchemy's "+psycopg" driver name.
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._notifier = notifier
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pg-wakeups", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_LISTEN_TICK_S + 5.0)

    def _run(self) -> None:
        # Imported here: an orchestrator on SQLite never loads psycopg.
        import psycopg

        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                log.warning("wake-ups from other orchestrator processes paused: %s", exc)
                self._stop.wait(_RECONNECT_S)

    def _listen(self) -> None:
        import psycopg

        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            while not self._stop.is_set():
                for note in conn.notifies(timeout=_LISTEN_TICK_S):
                    self._notifier.notify(name for name in note.payload.split(",") if name)
