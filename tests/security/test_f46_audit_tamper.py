"""F46/F47: an audit line edited, deleted, reordered or cut off is found; a crash mid-append is not
mistaken for tampering, and the chain resumes after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.audit import AuditTrail, read_events, verify_trail


@pytest.fixture
def trail_path(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    trail = AuditTrail(path)
    for i in range(1, 7):
        trail.append(user=f"user{i}", action="job.submit", job=f"job_{i}", message=f"event number {i}")
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_the_untouched_trail_verifies(trail_path: Path) -> None:
    report = verify_trail(trail_path)
    assert (report.ok, report.lines, report.first_bad_line, report.partial_lines) == (True, 6, None, ())


@pytest.mark.parametrize("where", ["message", "user", "time", "chain"])
def test_one_edited_character_names_that_line(trail_path: Path, where: str) -> None:
    lines = _lines(trail_path)
    old = {"message": b"number 3", "user": b"[U:user3]", "time": b"[T:20", "chain": b"[H:"}[where]
    start = lines[2].index(old) + len(old) - 1
    edited = (
        lines[2][:start] + (b"4" if lines[2][start : start + 1] != b"4" else b"5") + lines[2][start + 1 :]
    )
    lines[2] = edited
    trail_path.write_bytes(b"".join(lines))

    report = verify_trail(trail_path)
    assert not report.ok
    assert report.first_bad_line == 3, report


def test_a_deleted_line_names_the_line_after_the_gap(trail_path: Path) -> None:
    lines = _lines(trail_path)
    del lines[3]
    trail_path.write_bytes(b"".join(lines))

    report = verify_trail(trail_path)
    assert (report.ok, report.first_bad_line) == (False, 4)
    assert report.reason is not None and "deleted" in report.reason


def test_deleting_the_first_line_is_found(trail_path: Path) -> None:
    trail_path.write_bytes(b"".join(_lines(trail_path)[1:]))
    assert verify_trail(trail_path).first_bad_line == 1


def test_two_swapped_lines_name_the_first_swapped(trail_path: Path) -> None:
    lines = _lines(trail_path)
    lines[1], lines[2] = lines[2], lines[1]
    trail_path.write_bytes(b"".join(lines))

    report = verify_trail(trail_path)
    assert (report.ok, report.first_bad_line) == (False, 2)
    assert report.reason is not None and "out of order" in report.reason


def test_a_crash_mid_line_is_partial_and_the_chain_resumes(trail_path: Path) -> None:
    data = trail_path.read_bytes()
    trail_path.write_bytes(data[: len(data) - 20])  # the last append died 20 bytes short

    report = verify_trail(trail_path)
    assert (report.ok, report.lines, report.partial_lines) == (True, 5, (6,))
    assert len(read_events(trail_path)) == 5

    trail = AuditTrail(trail_path)
    trail.append(user="ann", action="job.submit", message="after the crash")
    trail.append(user="ann", action="job.cancel", message="and one more")

    report = verify_trail(trail_path)
    assert (report.ok, report.lines, report.partial_lines) == (True, 7, (6,)), report
    assert [e.line_no for e in read_events(trail_path)][-2:] == [7, 8]


def test_a_sealed_partial_line_is_still_covered_by_the_chain(trail_path: Path) -> None:
    data = trail_path.read_bytes()
    trail_path.write_bytes(data[: len(data) - 20])
    AuditTrail(trail_path).append(user="ann", action="job.submit")
    lines = _lines(trail_path)

    del lines[5]  # removing the sealed fragment afterwards is tampering, not a crash
    trail_path.write_bytes(b"".join(lines))

    report = verify_trail(trail_path)
    assert (report.ok, report.first_bad_line) == (False, 6)


def test_a_crash_between_seal_and_line_still_recovers(trail_path: Path) -> None:
    data = trail_path.read_bytes()
    trail_path.write_bytes(data[: len(data) - 20])
    AuditTrail(trail_path).append(user="ann", action="job.submit", message="x" * 50)
    data = trail_path.read_bytes()
    trail_path.write_bytes(data[: len(data) - 10])  # the sealing append died too

    trail = AuditTrail(trail_path)
    trail.append(user="ann", action="job.cancel")

    report = verify_trail(trail_path)
    assert (report.ok, report.lines, report.partial_lines) == (True, 6, (6, 7)), report


def test_whole_lines_cut_from_the_end_are_found_with_an_anchor(trail_path: Path) -> None:
    anchor = verify_trail(trail_path)
    trail_path.write_bytes(b"".join(_lines(trail_path)[:4]))

    assert verify_trail(trail_path).ok  # the file alone cannot tell
    by_count = verify_trail(trail_path, expected_lines=anchor.lines)
    assert (by_count.ok, by_count.first_bad_line) == (False, 5)
    by_hash = verify_trail(trail_path, expected_last_hash=anchor.last_hash)
    assert (by_hash.ok, by_hash.first_bad_line) == (False, 5)


def test_an_anchor_still_holds_after_the_trail_grows(trail_path: Path) -> None:
    anchor = verify_trail(trail_path)
    AuditTrail(trail_path).append(user="ann", action="login")

    report = verify_trail(trail_path, expected_lines=anchor.lines, expected_last_hash=anchor.last_hash)
    assert report.ok, report
    assert report.lines == 7
