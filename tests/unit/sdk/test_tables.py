"""The SDK's objects as Rich tables: names shown as typed, and results table by table."""

from __future__ import annotations

from rich.console import Console, RenderableType

from custos.core.wire import DatasetInfo
from custos.sdk import result_sections
from custos.sdk.tables import datasets_table, section_table


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
