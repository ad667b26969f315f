"""A trail's head, read incrementally, is what `verify_trail` counts, through crashes and truncation."""

from __future__ import annotations

from pathlib import Path

from custos.audit import AuditTrail, HeadReader, TrailHead, verify_trail


def test_the_head_follows_the_trail_as_verify_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    reader = HeadReader(path)
    assert reader.read() == TrailHead(0, None)
    trail = AuditTrail(path)
    for n in range(3):
        trail.append(user="gw", action="step", message=f"event {n}")
        report = verify_trail(path)
        assert (
            reader.read() == TrailHead(report.lines, report.last_hash) == TrailHead(n + 1, report.last_hash)
        )

    # A crash mid-append leaves a fragment: not an event; the next append seals it and counts.
    with path.open("ab") as out:
        out.write(b"[E:ev_0123")
    assert reader.read().index == 3
    trail.append(user="gw", action="step", message="after the crash")
    report = verify_trail(path)
    assert report.ok and report.partial_lines == (4,)
    assert reader.read() == TrailHead(4, report.last_hash)
    assert HeadReader(path).read() == reader.read()  # incremental == from scratch


def test_a_trail_cut_short_is_read_again_and_fails_against_the_old_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    trail, reader = AuditTrail(path), HeadReader(path)
    for n in range(4):
        trail.append(user="gw", action="step", message=f"event {n}")
    anchor = reader.read()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]))
    assert reader.read().index == 2
    report = verify_trail(path, expected_lines=anchor.index, expected_last_hash=anchor.hash)
    assert not report.ok and report.reason is not None and "its end was cut" in report.reason
