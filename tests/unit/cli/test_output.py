"""What the CLI prints: a spec, and a job with its tasks, as tables that show names as typed."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console, RenderableType

from custos.cli.output import job_tables, spec_table
from custos.core.states import JobState, SpecState
from custos.core.wire import JobPublic, Resources, SpecPublic

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def render(*tables: RenderableType) -> str:
    console = Console(record=True, width=200, color_system=None)
    for table in tables:
        console.print(table)
    return console.export_text()


def test_spec_table_shows_state_and_reason() -> None:
    spec = SpecPublic(
        id="spec_1", name="bmi", model="stats@1.0.0", datasets=["site-a/patients", "site-b/patients"],
        columns=["age", "postcode"], resources=Resources(), state=SpecState.FAILED,
        reason="site-a: the policy does not grant column(s) postcode", owner="alice", org="university",
        created_at=NOW,
    )  # fmt: skip
    text = render(spec_table(spec))
    assert "failed" in text
    assert "site-a/patients, site-b/patients" in text
    assert "does not grant column(s) postcode" in text


def test_job_tables_list_tasks() -> None:
    job = JobPublic.model_validate(
        {
            "id": "job_1", "spec_id": "spec_1", "model": "stats@1.0.0", "state": JobState.RUNNING, "round": 0,
            "reason": None, "submitter": "alice", "org": "university", "created_at": NOW, "finished_at": None,
            "tasks": [
                {"id": "task_a", "gateway": "site-a", "dataset": "patients", "kind": "compute", "round": 0,
                 "state": "done", "attempt": 1, "error": None},
                {"id": "task_b", "gateway": "site-b", "dataset": "patients", "kind": "compute", "round": 0,
                 "state": "failed", "attempt": 2, "error": "out of memory"},
            ],
        }
    )  # fmt: skip
    text = render(*job_tables(job))
    assert "running" in text
    assert "task_b" in text
    assert "out of memory" in text
