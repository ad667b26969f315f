"""Released custom code logs: a task's full log, as its gateway kept it and a custodian released it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from custos.core.wire_base import WireModel

# A custom code task's full log as its gateway keeps it (the tail, when longer), and as released.
MAX_CODE_LOG_BYTES = 64 * 1024


def _check_log_bytes(value: str) -> str:
    size = len(value.encode("utf-8"))
    if size > MAX_CODE_LOG_BYTES:
        raise ValueError(f"the log has {size} bytes (UTF-8), over the cap of {MAX_CODE_LOG_BYTES}")
    return value


class ReleasedLogCreate(WireModel):
    """A custodian's release of one custom code task's full log, as the gateway `gateway` kept it."""

    gateway: str = Field(min_length=1, max_length=64)
    task_id: str = Field(min_length=1, max_length=40)
    attempt: int = Field(ge=1, le=1000)
    log: Annotated[str, Field(max_length=MAX_CODE_LOG_BYTES), AfterValidator(_check_log_bytes)]


class ReleasedLogPublic(WireModel):
    """A released log, as the job's researcher reads it."""

    job_id: str
    gateway: str
    dataset: str
    task_id: str
    attempt: int
    log: str
    released_by: str
    org: str
    released_at: datetime
