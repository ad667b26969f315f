"""The full logs of failed tasks, kept at the gateway for its custodian: of custom code and published
packages (their failures, sandbox ends and refused outputs), and of a built-in model's errors that are
not its own sentences.

Failure text is output: a failure on real data leaves the gateway only as its category, class and
line (`custos.computations.failures`); its full text (the message and traceback, which may quote
rows) is kept here, one file per task attempt, at
`STATE/code-logs/JOB/TASK-ATTEMPT.json`: readable by the gateway's user alone (0600 in a 0700
folder), written atomically (a reader never sees half a log) and bounded to `MAX_CODE_LOG_BYTES`,
keeping the tail, where the error is. `custos gateway log show` reads them; `custos gateway log
release` sends one to the orchestrator for the job's researcher.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from custos.core.errors import InvalidInput, NotFound
from custos.core.wire import MAX_CODE_LOG_BYTES, TaskAssignment

FOLDER = "code-logs"
# Ids become file names: letters, digits, `_` and `-` only, so no id can name a path elsewhere.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FILE = re.compile(r"(?P<task>[A-Za-z0-9_-]{1,64})-(?P<attempt>[0-9]{1,4})\.json")
_READ_LIMIT = 4 * MAX_CODE_LOG_BYTES  # a file bigger than any this module writes is not one of ours


def _check_bounded(text: str) -> str:
    if len(text.encode("utf-8")) > MAX_CODE_LOG_BYTES:
        raise ValueError(f"log is over {MAX_CODE_LOG_BYTES} bytes")
    return text


class CodeLog(BaseModel):
    """One failed attempt of a custom code task: where it ran and its full error text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = 1
    job_id: str
    task_id: str
    attempt: int = Field(ge=1)
    gateway: str
    dataset: str
    type: str = Field(max_length=200)
    log: Annotated[str, AfterValidator(_check_bounded)]
    cut_bytes: int = Field(default=0, ge=0, description="bytes dropped from the front of the log")


def check_id(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise InvalidInput(f"{what} {value!r} is not an id: use letters, digits, _ and - (at most 64)")
    return value


def keep_tail(text: str, max_bytes: int = MAX_CODE_LOG_BYTES) -> tuple[str, int]:
    """`text` within `max_bytes` of UTF-8, keeping its end (a traceback ends with the error), and
    the number of bytes dropped. A cut text starts with a line that says so."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, 0
    marker_room = 64  # "[… N bytes cut]\n" for any N this size can have
    tail = data[len(data) - (max_bytes - marker_room) :].decode("utf-8", errors="ignore")
    cut = len(data) - len(tail.encode("utf-8"))
    kept = f"[… {cut} bytes cut]\n{tail}"
    assert len(kept.encode("utf-8")) <= max_bytes
    return kept, cut


def failure_log(reply: Mapping[str, Any]) -> tuple[str, str]:
    """The type and full text of a failure the sandbox reported: its traceback when it sent one,
    else `Type: message`."""
    kind = str(reply.get("type") or "Exception")[:200]
    traceback = reply.get("log")
    if isinstance(traceback, str) and traceback.strip():
        return kind, traceback
    return kind, f"{kind}: {reply.get('message', '')}"


def failed_task_log(task: TaskAssignment, gateway: str, reply: Mapping[str, Any]) -> CodeLog:
    """The log to keep of `task`'s failure at `gateway`, bounded."""
    kind, text = failure_log(reply)
    kept, cut = keep_tail(text)
    return CodeLog(
        job_id=task.job_id or "", task_id=task.task_id, attempt=task.attempt, gateway=gateway,
        dataset=task.dataset, type=kind, log=kept, cut_bytes=cut,
    )  # fmt: skip


def log_path(state_dir: Path, job_id: str, task_id: str, attempt: int) -> Path:
    job, task = check_id(job_id, "job"), check_id(task_id, "task")
    return state_dir / FOLDER / job / f"{task}-{attempt}.json"


def write_code_log(state_dir: Path, log: CodeLog) -> Path:
    """Write `log` (its text already bounded, see `keep_tail`) atomically, readable by this user only.
    Writing the same attempt again replaces it."""
    path = log_path(state_dir, log.job_id, log.task_id, log.attempt)
    for folder in (path.parent.parent, path.parent):
        folder.mkdir(mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(log.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_code_logs(state_dir: Path, job_id: str, task_id: str | None = None) -> list[CodeLog]:
    """The logs kept for `job_id` (of one task, when `task_id` is given), by task and attempt.
    NotFound, naming what was looked for, when there is none."""
    folder = state_dir / FOLDER / check_id(job_id, "--job")
    if task_id is not None:
        check_id(task_id, "--task")
    found: list[tuple[str, int, Path]] = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = _FILE.fullmatch(path.name)
            if match and (task_id is None or match["task"] == task_id):
                found.append((match["task"], int(match["attempt"]), path))
    if not found:
        of = f"task {task_id} of job {job_id}" if task_id else f"job {job_id}"
        raise NotFound(
            f"no custom code log of {of} in {state_dir / FOLDER}: the gateway keeps one only when "
            "a custom code task fails (check --state is the gateway's state folder)"
        )
    return [_read(path) for _, _, path in sorted(found)]


def _read(path: Path) -> CodeLog:
    if path.stat().st_size > _READ_LIMIT:
        raise InvalidInput(f"{path} is larger than any code log the gateway writes; it is not one")
    try:
        return CodeLog.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise InvalidInput(f"{path} is not a code log the gateway wrote: {exc.errors()[0]['msg']}") from None
