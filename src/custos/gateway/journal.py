"""The gateway's local journal of finished tasks, so a restart re-sends a result instead of
recomputing it (a step that spent privacy budget must never run twice). A task handed out again at a
later attempt (the gateway stopped before its result reached the orchestrator) gets the journaled
result of its earlier attempt.

A DP result is journaled before its budget reservation is committed, and the line names the
reservation, so that the result of a committed charge is never lost: a gateway killed between the two
re-sends the result and commits the reservation then (committing is idempotent).

A result's blobs (its weights) are kept beside the journal, one file per digest, written and synced
to disk before the line that refers to them, until the orchestrator has acknowledged the result: what
the line names survives a power cut, as the line does.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from custos.core.blobs import Blobs, blob_digest, refs_in
from custos.core.wire import TaskResultUpload, result_digest


@dataclass(frozen=True)
class Pending:
    """A result to send: the upload (JSON), the blobs it refers to, and the budget reservation its run
    used, which the agent commits only after the result is journaled."""

    upload: TaskResultUpload
    blobs: Blobs = field(default_factory=dict)
    reservation: str | None = None


def _write_durable(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all, and sync it to disk."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def _sync_dir(path: Path) -> None:
    """Sync a folder's entries (the names of files just renamed into it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._blob_dir = path.with_name(path.stem + "-blobs")
        self._done: dict[tuple[str, int], tuple[TaskResultUpload, str | None]] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    upload = TaskResultUpload.model_validate(entry["upload"])
                    reservation = entry.get("reservation")
                    self._done[(entry["task_id"], upload.attempt)] = (
                        upload,
                        reservation if isinstance(reservation, str) else None,
                    )
                except (ValueError, KeyError, AttributeError):
                    continue  # a line cut short by a crash; the task is simply run again

    def get(self, task_id: str, attempt: int) -> Pending | None:
        """The recorded result of this attempt, or None (also when its blobs are gone: it runs again)."""
        done = self._done.get((task_id, attempt))
        if done is None:
            return None
        upload, reservation = done
        blobs: Blobs = {}
        for digest in refs_in(upload.result):
            path = self._blob_dir / digest
            if not path.is_file():
                return None
            data = path.read_bytes()
            if blob_digest(data) != digest:
                return None
            blobs[digest] = data
        return Pending(upload, blobs, reservation)

    def earlier(self, task_id: str, attempt: int) -> Pending | None:
        """A result journaled for an earlier attempt of the task, as the result of `attempt`: the same
        bytes (its digest checked), to re-send rather than compute again. None when there is none, or
        when it is a failure (a failed attempt is tried again)."""
        earlier = sorted(a for (t, a) in self._done if t == task_id and a < attempt)
        for previous in reversed(earlier):
            pending = self.get(task_id, previous)
            if pending is None or pending.upload.status != "done":
                continue
            upload = pending.upload
            if upload.digest != result_digest(upload.status, upload.result, upload.error):
                continue
            return Pending(upload.model_copy(update={"attempt": attempt}), pending.blobs, pending.reservation)
        return None

    def record(self, task_id: str, pending: Pending) -> None:
        upload = pending.upload
        if pending.blobs:
            self._blob_dir.mkdir(mode=0o700, exist_ok=True)
            for digest, data in pending.blobs.items():
                _write_durable(self._blob_dir / digest, data)
            _sync_dir(self._blob_dir)
        entry = {"task_id": task_id, "upload": upload.model_dump(mode="json")}
        if pending.reservation is not None:
            entry["reservation"] = pending.reservation
        line = json.dumps(entry)
        with self._path.open("a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")  # end a line a crash cut short, so this record stands alone
            f.write(line.encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self._done[(task_id, upload.attempt)] = (upload, pending.reservation)

    def acknowledged(self, pending: Pending) -> None:
        """The orchestrator has the result (or refused it for good): its blobs need not be kept."""
        for digest in pending.blobs:
            (self._blob_dir / digest).unlink(missing_ok=True)
