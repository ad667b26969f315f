"""The trail writer and reader: round trip, escaping, refusals, and one chain under concurrent writers."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from custos.audit import AuditTrail, read_events, select_events, verify_trail
from custos.audit.events import parse_line
from custos.core.errors import InvalidInput

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


class SteppingClock:
    """A clock that moves one minute per reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        current = self.now
        self.now += timedelta(minutes=1)
        return current


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "audit.log", clock=SteppingClock())
    first = trail.append(user="ann@org-a", action="job.submit", job="job_1", message="submitted")
    second = trail.append(user="bob", action="release.approve", job="job_1", peer=first, message="ok")

    events = read_events(tmp_path / "audit.log")

    assert [e.id for e in events] == [first, second]
    assert events[0].time == T0 and events[1].time == T0 + timedelta(minutes=1)
    assert (events[0].user, events[0].action, events[0].job, events[0].peer) == (
        "ann@org-a",
        "job.submit",
        "job_1",
        None,
    )
    assert events[1].peer == first
    assert events[0].chain == "0" * 64
    assert [e.line_no for e in events] == [1, 2]


def test_message_with_newlines_and_escapes_stays_one_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    message = "two\nlines, a \\n that is literal, a tab\t, a bell\x07 and ] [brackets] é"
    AuditTrail(path).append(user="ann", action="note", message=message)

    assert path.read_bytes().count(b"\n") == 1
    assert read_events(path)[0].message == message


def test_the_first_line_has_the_documented_shape(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    event_id = AuditTrail(path, clock=lambda: T0).append(user="ann", action="login")

    line = path.read_text()
    assert line == f"[E:{event_id}][T:2025-03-01T12:00:00.123456Z][U:ann][A:login][J:-][R:-][H:{'0' * 64}]\n"


@pytest.mark.parametrize(
    ("field", "value"),
    [("user", "a]b"), ("user", ""), ("action", "x\ny"), ("job", "-"), ("peer", "p]"), ("job", "j\x00")],
)
def test_header_values_that_would_break_the_format_are_refused(
    tmp_path: Path, field: str, value: str
) -> None:
    path = tmp_path / "audit.log"
    kwargs = {"user": "ann", "action": "login", field: value}
    with pytest.raises(InvalidInput, match=field):
        AuditTrail(path).append(**kwargs)
    assert not path.exists()


def test_parse_line_refuses_malformed_lines() -> None:
    with pytest.raises(InvalidInput, match="line 7"):
        parse_line("[E:ev_1][T:now]hello\n", 7)


def test_select_events_filters_by_job_user_and_time(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    trail = AuditTrail(path, clock=SteppingClock())
    trail.append(user="ann", action="job.submit", job="job_1")
    trail.append(user="bob", action="job.submit", job="job_2")
    trail.append(user="ann", action="job.cancel", job="job_2")
    events = read_events(path)

    assert [e.action for e in select_events(events, user="ann")] == ["job.submit", "job.cancel"]
    assert [e.user for e in select_events(events, job="job_2")] == ["bob", "ann"]
    assert [e.line_no for e in select_events(events, since=T0 + timedelta(minutes=1))] == [2, 3]
    assert select_events(events, job="job_2", user="ann", since=T0 + timedelta(minutes=3)) == []
    with pytest.raises(InvalidInput, match="time zone"):
        select_events(events, since=datetime(2025, 1, 1))


def test_a_missing_trail_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no audit trail"):
        read_events(tmp_path / "absent.log")
    with pytest.raises(InvalidInput, match="no audit trail"):
        verify_trail(tmp_path / "absent.log")


def test_threads_append_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    ids: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        trail = AuditTrail(path)
        for i in range(25):
            event_id = trail.append(user=f"user{n}", action="tick", message=f"{n}/{i}")
            with lock:
                ids.append(event_id)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    report = verify_trail(path)
    assert report.ok, report
    assert report.lines == 200
    events = read_events(path)
    assert sorted(e.id for e in events) == sorted(ids)
    assert len(set(ids)) == 200


def _process_writer(path: str, n: int, count: int) -> None:
    trail = AuditTrail(Path(path))
    for i in range(count):
        trail.append(user=f"proc{n}", action="tick", message=f"{n}/{i}")


def test_processes_append_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_process_writer, args=(str(path), n, 30)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0

    report = verify_trail(path)
    assert report.ok, report
    events = read_events(path)
    assert len(events) == 120
    assert len({e.id for e in events}) == 120
    for n in range(4):
        assert sorted(e.message for e in events if e.user == f"proc{n}") == sorted(
            f"{n}/{i}" for i in range(30)
        )


def test_lines_longer_than_the_tail_window_still_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    trail = AuditTrail(path)
    for size in (100_000, 10, 300_000, 5):
        trail.append(user="ann", action="upload", message="x" * size)

    report = verify_trail(path)
    assert report.ok, report
    assert [len(e.message) for e in read_events(path)] == [100_000, 10, 300_000, 5]
