"""Verifying a trail: recompute the chain and name the first line that was edited, removed or moved.

What the file alone proves: every event line is well-formed, carries the seal of its own bytes, and
chains to the bytes before it. An edited line is named itself (its seal breaks); a deleted line is named
by the line after the gap; a reordered line by the first line out of place. Fragments left by a crash
are listed in `partial_lines` and do not make the trail invalid.

What it cannot prove: that nothing was cut from the end, since a shorter trail is still a valid chain.
A caller that kept an anchor (`lines` and `last_hash` of an earlier report, stored elsewhere) passes it
as `expected_lines` / `expected_last_hash` to detect that, or several as `anchors` (the orchestrator
keeps them for every gateway's trail and its own: `custos audit verify --anchored NAME`).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from custos.audit.events import parse_line, read_trail_bytes
from custos.audit.line import chain_hash, digest, has_valid_seal, is_partial, split_lines
from custos.core.errors import InvalidInput


@dataclass(frozen=True)
class VerifyReport:
    """`lines` counts event lines (fragments excluded); `last_hash` is the sha256 of the last event line,
    the anchor to keep for a later truncation check."""

    ok: bool
    lines: int
    first_bad_line: int | None
    reason: str | None
    partial_lines: tuple[int, ...]
    last_hash: str | None = None


@dataclass(frozen=True)
class _Line:
    line_no: int
    data: bytes
    hash: str


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _line_problem(line: _Line, before: bytes, hashes: dict[str, int]) -> str | None:
    """Why this event line does not verify, given the bytes since the previous event line; None if it does."""
    try:
        event = parse_line(line.data.decode("utf-8"), line.line_no)
    except (InvalidInput, UnicodeDecodeError):
        return "not a well-formed audit event"
    if not has_valid_seal(line.data):
        return "edited: the line does not match the seal in its id"
    if _same(event.chain, chain_hash(before)):
        return None
    moved_from = hashes.get(event.chain)
    if moved_from is not None and moved_from != line.line_no - 1:
        return f"out of order: it belongs right after line {moved_from}"
    if line.line_no == 1 or not before:
        return "does not chain to the start of the trail: earlier lines were deleted"
    return f"does not chain to the line before it: a line before line {line.line_no} was deleted"


def _anchor_problem(
    events: list[_Line], end: int, expected_lines: int | None, expected_last_hash: str | None
) -> tuple[int, str] | None:
    """Where the trail disagrees with the caller's anchor; `end` is the line number just past the file."""
    if expected_lines is not None and len(events) < expected_lines:
        return (
            end,
            f"the trail holds {len(events)} events but the anchor expects {expected_lines}: its end was cut",
        )
    if expected_last_hash is None:
        return None
    if expected_lines is not None and expected_lines > 0:
        anchored = events[expected_lines - 1]
        if not _same(anchored.hash, expected_last_hash):
            return (
                anchored.line_no,
                f"event {expected_lines} does not match the anchor hash: the trail was rewritten",
            )
        return None
    if not any(_same(event.hash, expected_last_hash) for event in events):
        return end, "no event matches the anchor hash: the trail was cut or rewritten"
    return None


def verify_trail(
    path: Path,
    *,
    expected_last_hash: str | None = None,
    expected_lines: int | None = None,
    anchors: Sequence[tuple[int, str]] = (),
) -> VerifyReport:
    """Check the whole chain of the trail at `path` and report the first bad line, if any.

    `anchors` are heads kept elsewhere, (events, hash of the last): each must still be in the trail.
    All of them are checked, not only the newest: a trail cut and then grown again past the newest
    anchor is found by an older one."""
    lines = split_lines(read_trail_bytes(path))
    events = [_Line(n, data, digest(data)) for n, data in enumerate(lines, start=1) if not is_partial(data)]
    hashes = {event.hash: event.line_no for event in events}
    partial = tuple(n for n, data in enumerate(lines, start=1) if is_partial(data))
    last_hash = events[-1].hash if events else None
    before = b""
    for line_no, data in enumerate(lines, start=1):
        if is_partial(data):
            before += data
            continue
        problem = _line_problem(_Line(line_no, data, ""), before, hashes)
        if problem is not None:
            return VerifyReport(False, len(events), line_no, problem, partial, last_hash)
        before = data
    checks = [(expected_lines, expected_last_hash), *sorted(anchors)]
    for index, hash_ in checks:
        anchor = _anchor_problem(events, len(lines) + 1, index, hash_)
        if anchor is not None:
            return VerifyReport(False, len(events), anchor[0], anchor[1], partial, last_hash)
    return VerifyReport(True, len(events), None, None, partial, last_hash)
