"""The append-only audit trail: the one writer of trail files, safe across threads and processes.

Each append holds an exclusive `flock` on the file while it reads the tail (to find the chain hash) and
writes the new line with one `os.write` on an O_APPEND descriptor, then fsyncs. If the file ends with a
fragment (a crash mid-write), the same write first seals it with PARTIAL_END, and the new line chains to
the bytes from the start of the last complete event line through the sealed fragment (see `line.py`).
"""

from __future__ import annotations

import fcntl
import os
import secrets
from datetime import UTC
from pathlib import Path

from custos.audit.events import TIME_FORMAT
from custos.audit.line import (
    PARTIAL_END,
    build_line,
    chain_hash,
    check_header,
    is_partial,
    optional_header,
    split_lines,
)
from custos.core.clock import Clock, utcnow

_FIRST_WINDOW = 64 * 1024


def _tail_since_last_event(fd: int, size: int) -> bytes:
    """The bytes from the start of the last complete event line to the end of the file (all of the file
    when no such line exists). Reads backwards in growing windows, so a long trail costs little."""
    window = _FIRST_WINDOW
    while True:
        start = max(0, size - window)
        data = os.pread(fd, size - start, start)
        lines = split_lines(data)
        first_whole = 0 if start == 0 else 1  # a window that does not begin the file may cut its first line
        for index in range(len(lines) - 1, first_whole - 1, -1):
            if not is_partial(lines[index]):
                return b"".join(lines[index:])
        if start == 0:
            return data
        window *= 4


class AuditTrail:
    """Appends events to one trail file; creates the file on first append."""

    def __init__(self, path: Path, *, clock: Clock = utcnow) -> None:
        self.path = path
        self._clock = clock

    def append(
        self,
        *,
        user: str,
        action: str,
        job: str | None = None,
        peer: str | None = None,
        message: str = "",
    ) -> str:
        """Append one event and return its id. Refuses (InvalidInput) header values that would break
        the format before anything is written."""
        fields = (
            f"[U:{check_header('user', user)}][A:{check_header('action', action)}]"
            f"[J:{optional_header('job', job)}][R:{optional_header('peer', peer)}]"
        )
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the audit clock must return an aware datetime")
        stamp = now.astimezone(UTC).strftime(TIME_FORMAT)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            before = _tail_since_last_event(fd, size) if size else b""
            seal = b"" if not before or before.endswith(b"\n") else PARTIAL_END
            line = build_line(
                secrets.token_hex(4), f"[T:{stamp}]{fields}[H:{chain_hash(before + seal)}]", message
            )
            data = seal + line
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        return f"ev_{line[6:22].decode()}"
