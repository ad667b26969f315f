"""The gateway's journal: a finished task is never computed twice, even across a crash."""

from __future__ import annotations

from pathlib import Path

from custos.core.blobs import externalize
from custos.core.wire import TaskResultUpload, result_digest
from custos.gateway.journal import Journal, Pending


def upload(attempt: int, value: int) -> Pending:
    result = {"value": value}
    return Pending(
        TaskResultUpload(
            attempt=attempt, status="done", result=result, digest=result_digest("done", result, None)
        )
    )


def test_recorded_results_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    Journal(path).record("task_1", upload(1, 7))
    again = Journal(path)
    assert again.get("task_1", 1) == upload(1, 7)
    assert again.get("task_1", 2) is None, "another attempt is another computation"


def test_a_line_cut_short_by_a_crash_is_ignored_and_the_journal_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    Journal(path).record("task_1", upload(1, 1))
    with path.open("a") as f:
        f.write('{"task_id": "task_2", "upload": {"attem')  # the crash
    journal = Journal(path)
    assert journal.get("task_1", 1) is not None
    assert journal.get("task_2", 1) is None
    journal.record("task_3", upload(1, 3))
    assert Journal(path).get("task_3", 1) == upload(1, 3)


def test_a_results_blobs_are_kept_until_acknowledged_and_a_lost_blob_means_run_again(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    result, blobs = externalize({"weights": b"\x00" * 1000})
    pending = Pending(
        TaskResultUpload(attempt=1, status="done", result=result, digest=result_digest("done", result, None)),
        blobs,
    )
    Journal(path).record("task_1", pending)
    again = Journal(path)
    assert again.get("task_1", 1) == pending
    again.acknowledged(pending)
    assert Journal(path).get("task_1", 1) is None, "without its blobs the result cannot be resent"


def test_a_later_attempt_gets_the_result_journaled_at_an_earlier_one(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    Journal(path).record("task_1", upload(1, 7))
    again = Journal(path)  # the gateway restarted; the task came back at attempt 2
    resent = again.earlier("task_1", 2)
    assert resent == upload(2, 7), "the same bytes and digest, as the result of attempt 2"
    assert again.earlier("task_1", 1) is None
    assert again.earlier("task_2", 2) is None


def test_the_budget_reservation_a_result_names_survives_a_restart_and_a_later_attempt(
    tmp_path: Path,
) -> None:
    """The agent commits a DP result's reservation only after the journal line: after a crash in
    between, the line still names the reservation to commit."""
    path = tmp_path / "journal.jsonl"
    pending = Pending(upload(1, 7).upload, reservation="rsv_1")
    Journal(path).record("task_1", pending)
    Journal(path).record("task_2", upload(1, 8))
    again = Journal(path)
    assert again.get("task_1", 1) == pending
    resent = again.earlier("task_1", 2)
    assert resent is not None and resent.reservation == "rsv_1"
    got = again.get("task_2", 1)
    assert got is not None and got.reservation is None


def test_a_failure_or_a_result_that_fails_its_digest_is_not_re_sent(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    failed = TaskResultUpload(
        attempt=1, status="failed", result=None, error="x", digest=result_digest("failed", None, "x")
    )
    journal.record("task_1", Pending(failed))
    assert journal.earlier("task_1", 2) is None, "a failed attempt is tried again"
    altered = upload(1, 7).upload.model_copy(update={"result": {"value": 8}})
    journal.record("task_2", Pending(altered))
    assert journal.earlier("task_2", 2) is None
