"""`custos gateway log show|release` at the gateway's state folder: the log as kept, and bad input as
one line."""

from __future__ import annotations

import json
from pathlib import Path

from custos.core.wire import Resources, Submitter, TaskAssignment, TaskKind
from custos.gateway.code_logs import failed_task_log, write_code_log

from .conftest import CliRunner

JOB = "job_0123456789abcdef"
TRACEBACK = (
    "Traceback (most recent call last):\n  File \"<custom:f>\", line 2, in f\nValueError: bad row 'a-7'\n"
)


def kept_log(state: Path) -> None:
    task = TaskAssignment(
        task_id="task_1", attempt=1, kind=TaskKind.COMPUTE, spec_id="spec_1", job_id=JOB, round=0,
        model="custom@1.0.0", dataset="patients", columns=["age"], params={}, round_input={},
        submitter=Submitter(name="alice", org="university", role="lead_researcher"), resources=Resources(),
    )  # fmt: skip
    write_code_log(state, failed_task_log(task, "site-a", {"type": "ValueError", "log": TRACEBACK}))


def test_show_prints_the_kept_log_whole(custos: CliRunner, tmp_path: Path) -> None:
    kept_log(tmp_path)
    run = custos("gateway", "log", "show", "--state", str(tmp_path), "--job", JOB)
    assert run.code == 0, run.stderr
    assert run.stdout == (
        f"── log of task task_1 (attempt 1) of job {JOB} at site-a/patients: ValueError\n{TRACEBACK}"
    )
    as_json = custos("gateway", "log", "show", "--state", str(tmp_path), "--job", JOB, "--json")
    assert [log["log"] for log in json.loads(as_json.stdout)] == [TRACEBACK]


def test_no_log_and_a_bad_job_id_are_one_line(custos: CliRunner, tmp_path: Path) -> None:
    kept_log(tmp_path)
    none = custos(
        "gateway", "log", "show", "--state", str(tmp_path), "--job", "job_1"
    ).assert_one_line_error()
    assert "no custom code log of job job_1 in" in none
    task = custos("gateway", "log", "show", "--state", str(tmp_path), "--job", JOB, "--task", "task_2")
    assert "no custom code log of task task_2 of job" in task.assert_one_line_error()
    bad = custos(
        "gateway", "log", "show", "--state", str(tmp_path), "--job", "../etc"
    ).assert_one_line_error()
    assert "--job '../etc' is not an id" in bad


def test_release_without_a_kit_is_one_line_and_sends_nothing(custos: CliRunner, tmp_path: Path) -> None:
    kept_log(tmp_path)
    missing = tmp_path / "no-kit"
    run = custos("gateway", "log", "release", "--kit", str(missing), "--state", str(tmp_path), "--job", JOB)
    assert "no-kit" in run.assert_one_line_error()
