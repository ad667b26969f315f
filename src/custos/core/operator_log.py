"""What a long-running process (orchestrator, gateway) writes for its operator: one handler on stderr,
as text lines or as one JSON object a line for log shippers (`--log-format json`).

Routine chatter is demoted to DEBUG, so an INFO log says what an operator acts on: the schema
migrations a start runs (alembic) and every HTTP request of a long poll (httpx) show only with
`--log-level debug`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
# Loggers of libraries whose INFO records are routine for an operator: shown at DEBUG.
DEMOTED_LOGGERS = ("alembic", "httpx")


class DemoteRoutine(logging.Filter):
    """Turns the INFO records of `DEMOTED_LOGGERS` into DEBUG ones, dropped unless DEBUG is on."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name.startswith(DEMOTED_LOGGERS):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self.level


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, process, message, and the
    exception's text when there is one."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def parse_level(level: str) -> int:
    if level.lower() not in LOG_LEVELS:
        raise ValueError(f"log level {level!r}: give one of {', '.join(LOG_LEVELS)}")
    return int(logging.getLevelNamesMapping()[level.upper()])


def configure_logging(
    process: str, *, level: str = "info", log_format: LogFormat = "text", stream: IO[str] | None = None
) -> None:
    """Send every logger's records to one handler on `stream` (stderr), replacing any handler the root
    logger had. `process` names the writer (`orchestrator`, a gateway's name) in each line."""
    threshold = parse_level(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(process))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {process} %(levelname)s %(message)s"))
    handler.addFilter(DemoteRoutine(threshold))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # Routine INFO records pass the root's level, then the handler's filter demotes and drops them.
    root.setLevel(threshold)
    # Libraries whose DEBUG records trace every byte (httpcore) or every event loop step.
    for noisy in ("asyncio", "multipart", "urllib3", "filelock", "httpcore"):
        logging.getLogger(noisy).setLevel(max(threshold, logging.INFO))
