"""The gateway's custom code logs: bounded to their tail, owner-only, atomic, and found by job."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from custos.core.errors import InvalidInput, NotFound
from custos.core.wire import (
    MAX_CODE_LOG_BYTES,
    ReleasedLogCreate,
    Resources,
    Submitter,
    TaskAssignment,
    TaskKind,
)
from custos.gateway.code_logs import (
    CodeLog,
    failed_task_log,
    keep_tail,
    log_path,
    read_code_logs,
    write_code_log,
)

ERROR = "ValueError: bad row 'a-17' with bmi 31.5 in region north"


def assignment(
    task_id: str = "task_1", attempt: int = 1, job_id: str = "job_0123456789abcdef"
) -> TaskAssignment:
    return TaskAssignment(
        task_id=task_id,
        attempt=attempt,
        kind=TaskKind.COMPUTE,
        spec_id="spec_1",
        job_id=job_id,
        round=0,
        model="custom@1.0.0",
        dataset="patients",
        columns=["age"],
        params={},
        round_input={},
        submitter=Submitter(name="alice", org="university", role="lead_researcher"),
        resources=Resources(),
    )


def traceback_of(lines: int) -> str:
    frames = "".join(f'  File "<custom code>", line {i}, in fn\n    step_{i}()\n' for i in range(lines))
    return f"Traceback (most recent call last):\n{frames}{ERROR}\n"


def test_a_short_log_is_kept_whole() -> None:
    text = traceback_of(3)
    assert keep_tail(text) == (text, 0)


def test_a_long_log_keeps_its_tail_within_the_bound_and_says_what_was_cut() -> None:
    text = traceback_of(5000)
    assert len(text.encode()) > 4 * MAX_CODE_LOG_BYTES
    kept, cut = keep_tail(text)
    assert len(kept.encode()) <= MAX_CODE_LOG_BYTES
    assert kept.startswith(f"[… {cut} bytes cut]\n")
    assert kept.endswith(ERROR + "\n")  # the error itself is at the end, and kept
    assert cut + len(kept.encode()) - len(f"[… {cut} bytes cut]\n".encode()) == len(text.encode())


def test_the_cut_never_splits_a_character() -> None:
    text = "é" * MAX_CODE_LOG_BYTES  # two bytes each
    kept, cut = keep_tail(text, max_bytes=1001)
    body = kept.split("\n", 1)[1]
    assert set(body) == {"é"} and len(kept.encode()) <= 1001
    assert cut == 2 * (len(text) - len(body))


def test_a_failure_keeps_its_traceback_bounded_and_by_job(tmp_path: Path) -> None:
    log = failed_task_log(
        assignment(), "site-a", {"type": "ValueError", "message": "x", "log": traceback_of(5000)}
    )
    assert (log.job_id, log.task_id, log.attempt, log.gateway, log.dataset, log.type) == (
        "job_0123456789abcdef", "task_1", 1, "site-a", "patients", "ValueError",
    )  # fmt: skip
    assert log.cut_bytes > 0 and log.log.endswith(ERROR + "\n")
    # What the gateway keeps always fits what the orchestrator accepts.
    ReleasedLogCreate(gateway="site-a", task_id="task_1", attempt=1, log=log.log)

    path = write_code_log(tmp_path, log)
    assert path == tmp_path / "code-logs" / "job_0123456789abcdef" / "task_1-1.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["task_1-1.json"]  # no temporary file left
    assert read_code_logs(tmp_path, "job_0123456789abcdef") == [log]


def test_without_a_traceback_the_log_is_the_type_and_full_message(tmp_path: Path) -> None:
    log = failed_task_log(assignment(), "site-a", {"type": "SandboxError", "message": "killed after 5 s"})
    assert log.log == "SandboxError: killed after 5 s" and log.cut_bytes == 0


def test_writing_an_attempt_again_replaces_it_and_logs_are_read_by_task_and_attempt(tmp_path: Path) -> None:
    job = "job_0123456789abcdef"
    for task_id, attempt, message in [("task_2", 1, "b"), ("task_1", 2, "a2"), ("task_1", 1, "old")]:
        write_code_log(
            tmp_path, failed_task_log(assignment(task_id, attempt), "site-a", {"message": message})
        )
    write_code_log(tmp_path, failed_task_log(assignment("task_1", 1), "site-a", {"message": "a1"}))
    every = read_code_logs(tmp_path, job)
    assert [(log.task_id, log.attempt, log.log) for log in every] == [
        ("task_1", 1, "Exception: a1"),
        ("task_1", 2, "Exception: a2"),
        ("task_2", 1, "Exception: b"),
    ]
    assert [log.attempt for log in read_code_logs(tmp_path, job, "task_1")] == [1, 2]


def test_no_log_is_a_not_found_that_names_the_job_and_task(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no custom code log of job job_1 in"):
        read_code_logs(tmp_path, "job_1")
    write_code_log(tmp_path, failed_task_log(assignment(job_id="job_1"), "site-a", {"message": "m"}))
    with pytest.raises(NotFound, match="no custom code log of task task_9 of job job_1"):
        read_code_logs(tmp_path, "job_1", "task_9")


@pytest.mark.parametrize("bad", ["../job_1", "job_1/..", "", "job 1", "a" * 65])
def test_an_id_that_could_name_another_path_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInput, match="is not an id"):
        read_code_logs(tmp_path, bad)
    with pytest.raises(InvalidInput, match="is not an id"):
        log_path(tmp_path, "job_1", bad, 1)
    assert not (tmp_path / "code-logs").exists()


def test_a_file_that_is_not_a_code_log_is_refused_with_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "code-logs" / "job_1"
    folder.mkdir(parents=True)
    (folder / "task_1-1.json").write_text('{"job_id": "job_1"}', encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"task_1-1\.json is not a code log the gateway wrote"):
        read_code_logs(tmp_path, "job_1")


def test_a_log_over_the_bound_is_no_code_log() -> None:
    with pytest.raises(ValueError, match="over"):
        CodeLog(
            job_id="job_1", task_id="t", attempt=1, gateway="g", dataset="d", type="E",
            log="x" * (MAX_CODE_LOG_BYTES + 1),
        )  # fmt: skip
