"""The head of a trail: how many events it holds and the hash of the last one, the anchor that someone
else keeps so that a trail cut short is found (`verify_trail(expected_lines=, expected_last_hash=)`).

`HeadReader` reads only what was appended since its last call, so asking for the head with every
heartbeat costs the new lines, not the whole trail. A trail that shrank is read again from the start.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from custos.audit.line import digest, is_partial, split_lines


@dataclass(frozen=True)
class TrailHead:
    """`index`: the number of event lines (fragments left by a crash excluded), as `verify_trail`
    counts them; `hash`: the sha256 of the last event line, None when there is none."""

    index: int
    hash: str | None


class HeadReader:
    """The head of the trail at `path`, read incrementally; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._offset = 0
        self._head = TrailHead(0, None)

    def read(self) -> TrailHead:
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                self._offset, self._head = 0, TrailHead(0, None)
                return self._head
            try:
                size = os.fstat(fd).st_size
                if size < self._offset:
                    self._offset, self._head = 0, TrailHead(0, None)
                data = os.pread(fd, size - self._offset, self._offset)
            finally:
                os.close(fd)
            index, last = self._head.index, self._head.hash
            for line in split_lines(data):
                if not line.endswith(b"\n"):
                    break  # a fragment still open: read again once the next append seals it
                self._offset += len(line)
                if not is_partial(line):
                    index, last = index + 1, digest(line)
            self._head = TrailHead(index, last)
            return self._head
