"""What the CLI prints: tables that show names as typed, and results table by table."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console, RenderableType

from custos.cli.output import datasets_table, job_tables, section_table, spec_table
from custos.core.states import JobState, SpecState
from custos.core.wire import DatasetInfo, JobPublic, Resources, SpecPublic
from custos.sdk import result_sections

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def render(*tables: RenderableType) -> str:
    console = Console(record=True, width=200, color_system=None)
    for table in tables:
        console.print(table)
    return console.export_text()


def test_datasets_table_shows_markup_literally() -> None:
    info = DatasetInfo.model_validate(
        {
            "id": "ds_1",
            "gateway": "site-a",
            "name": "patients",
            "description": "[red]not markup[/red]",
            "schema": {"columns": [{"name": "age", "type": "integer", "kind": "numeric"}]},
            "row_count": 100000,
            "policy_yaml": None,
        }
    )
    text = render(datasets_table([info]))
    assert "site-a/patients" in text
    assert "100,000" in text
    assert "[red]not markup[/red]" in text


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


def test_result_sections_render_as_tables_with_suppressed_rows() -> None:
    result = {
        "summaries": [
            {"column": "bmi", "group": "F", "count": 150210, "mean": 26.4321987},
            {"column": "bmi", "group": "X", "count": None, "suppressed": True, "reason": "count below 10"},
        ],
        "histograms": [{"column": "age", "edges": [18, 30], "counts": [120]}],
        "quantiles": [],
    }
    text = render(*(section_table(s) for s in result_sections(result)))
    assert "summaries" in text
    assert "26.4322" in text
    assert "count below 10" in text
    assert "18 to 30" in text
    assert "quantiles: none" in text
