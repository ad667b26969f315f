"""Audit events as read back: parsing one line, reading a trail, and selecting events from it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from custos.audit.line import NONE_MARK, is_partial, split_lines, unescape_message
from custos.core.errors import InvalidInput

_HEADER = r"([^\]\x00-\x1f\x7f]+)"
_LINE = re.compile(
    r"\[E:(ev_[0-9a-f]{16})\]\[T:([0-9T:.\-]+Z)\]"
    rf"\[U:{_HEADER}\]\[A:{_HEADER}\]\[J:{_HEADER}\]\[R:{_HEADER}\]"
    r"\[H:([0-9a-f]{64})\]([^\x00-\x1f\x7f]*)\n?"
)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class AuditEvent:
    """One event of a trail. `line_no` counts file lines from 1; `chain` is the line's H header."""

    line_no: int
    id: str
    time: datetime
    user: str
    action: str
    job: str | None
    peer: str | None
    chain: str
    message: str


def _optional(value: str) -> str | None:
    return None if value == NONE_MARK else value


def parse_line(line: str, line_no: int) -> AuditEvent:
    """Parse one event line (with or without its newline); InvalidInput if it is not well-formed."""
    match = _LINE.fullmatch(line)
    if match is None:
        raise InvalidInput(f"line {line_no} is not a well-formed audit event")
    event_id, when, user, action, job, peer, chain, message = match.groups()
    try:
        time = datetime.strptime(when, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(f"line {line_no} has an unreadable time {when!r}") from exc
    return AuditEvent(
        line_no,
        event_id,
        time,
        user,
        action,
        _optional(job),
        _optional(peer),
        chain,
        unescape_message(message),
    )


def read_trail_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidInput(f"no audit trail at {path}: the file does not exist") from exc
    except IsADirectoryError as exc:
        raise InvalidInput(f"{path} is a folder, not an audit trail file") from exc


def read_events(path: Path) -> list[AuditEvent]:
    """The trail's complete, well-formed events in file order. Fragments and malformed lines are left
    out: `verify_trail` is what reports them."""
    events = []
    for line_no, line in enumerate(split_lines(read_trail_bytes(path)), start=1):
        if is_partial(line):
            continue
        try:
            events.append(parse_line(line.decode("utf-8"), line_no))
        except (InvalidInput, UnicodeDecodeError):
            continue
    return events


def select_events(
    events: Iterable[AuditEvent],
    *,
    job: str | None = None,
    user: str | None = None,
    since: datetime | None = None,
    action: str | None = None,
    until: datetime | None = None,
) -> list[AuditEvent]:
    """The events that match every filter given; `since` is inclusive, `until` exclusive, and both
    must carry a time zone."""
    for name, bound in (("since", since), ("until", until)):
        if bound is not None and bound.tzinfo is None:
            raise InvalidInput(f"{name} {bound.isoformat()} has no time zone: give one, e.g. +00:00 or Z")
    return [
        event
        for event in events
        if (job is None or event.job == job)
        and (user is None or event.user == user)
        and (action is None or event.action == action)
        and (since is None or event.time >= since)
        and (until is None or event.time < until)
    ]
