"""The gateway's local journal of finished tasks, so a restart re-sends a result instead of
recomputing it (a step that spent privacy budget must never run twice)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from custos.core.wire import TaskResultUpload


class Journal:
    def __init__(self, path: Path) -> None:
        self._path = path
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

    def get(self, task_id: str, attempt: int) -> TaskResultUpload | None:
        return self._done.get((task_id, attempt))

    def record(self, task_id: str, upload: TaskResultUpload) -> None:
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
