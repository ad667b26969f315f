"""The gateway's local journal of finished tasks, so a restart re-sends a result instead of
recomputing it (a step that spent privacy budget must never run twice). A task handed out again at a
later attempt (the gateway stopped before its result reached the orchestrator) gets the journaled
result of its earlier attempt.

A result's blobs (its weights) are kept beside the journal, one file per digest, written before the
line that refers to them, until the orchestrator has acknowledged the result. They are not synced to
disk: a blob lost in a power cut fails its digest check, and its task runs again — which spends budget
twice at worst, never less than was used.
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
    """A result to send: the upload (JSON) and the blobs it refers to."""

    upload: TaskResultUpload
    blobs: Blobs = field(default_factory=dict)


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


class Journal:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._blob_dir = path.with_name(path.stem + "-blobs")
        self._done: dict[tuple[str, int], TaskResultUpload] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self._done[(entry["task_id"], entry["upload"]["attempt"])] = (
                        TaskResultUpload.model_validate(entry["upload"])
                    )
                except (ValueError, KeyError):
                    continue  # a line cut short by a crash; the task is simply run again

    def get(self, task_id: str, attempt: int) -> Pending | None:
        """The recorded result of this attempt, or None (also when its blobs are gone: it runs again)."""
        upload = self._done.get((task_id, attempt))
        if upload is None:
            return None
        blobs: Blobs = {}
        for digest in refs_in(upload.result):
            path = self._blob_dir / digest
            if not path.is_file():
                return None
            data = path.read_bytes()
            if blob_digest(data) != digest:
                return None
            blobs[digest] = data
        return Pending(upload, blobs)

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
            return Pending(upload.model_copy(update={"attempt": attempt}), pending.blobs)
        return None

    def record(self, task_id: str, pending: Pending) -> None:
        upload = pending.upload
        if pending.blobs:
            self._blob_dir.mkdir(mode=0o700, exist_ok=True)
            for digest, data in pending.blobs.items():
                _write_atomic(self._blob_dir / digest, data)
        line = json.dumps({"task_id": task_id, "upload": upload.model_dump(mode="json")})
        with self._path.open("a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")  # end a line a crash cut short, so this record stands alone
            f.write(line.encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self._done[(task_id, upload.attempt)] = upload

    def acknowledged(self, pending: Pending) -> None:
        """The orchestrator has the result (or refused it for good): its blobs need not be kept."""
        for digest in pending.blobs:
            (self._blob_dir / digest).unlink(missing_ok=True)
