"""Every SDK view of someone else's text is inert: Rich tables (the CLI's too), notebook HTML, reprs
and the errors that quote the orchestrator. Hostile text is shown as visible escapes, never raw."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from custos.core.errors import Conflict, NotFound
from custos.core.wire import DatasetInfo, JobResult
from custos.sdk import Result, result_sections
from custos.sdk.display import fields_html, table_html
from custos.sdk.tables import add_row, datasets_table, frame_table, schema_table, section_table

from .conftest import ScriptedServer
from .test_catalogue import DESCRIBED
from .test_handles import job_json, spec_json

RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
# Erase the line and print over it; conceal; a C1 CSI; a bidi override; Rich markup.
HOSTILE = "ok\x1b[2K\x1b[1Gfake \x1b[8mgone \x9b8m \u202eesrever [bold]x[/bold]"
SHOWN = "ok\\x1b[2K\\x1b[1Gfake \\x1b[8mgone \\x9b8m \\u202eesrever [bold]x[/bold]"


def render(*renderables: RenderableType) -> str:
    console = Console(record=True, width=400, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def assert_inert(text: str) -> None:
    assert not RAW.findall(text), text


def test_add_row_shows_strings_and_styled_text_inert_and_never_as_markup() -> None:
    table = Table()
    table.add_column("a")
    table.add_column("b")
    add_row(table, HOSTILE, Text(HOSTILE, style="red"))
    text = render(table)
    assert_inert(text)
    assert text.count(SHOWN) == 2


def test_a_result_section_shows_a_hostile_title_column_and_cell_inert() -> None:
    result = {HOSTILE: [{HOSTILE: HOSTILE, "n": 1}]}
    text = render(*(section_table(s) for s in result_sections(result)))
    assert_inert(text)
    assert text.count(SHOWN) == 3


def test_dataset_tables_show_names_descriptions_and_notes_inert() -> None:
    info = DatasetInfo.model_validate(
        {**DESCRIBED, "description": HOSTILE, "owner_org": "hospital-a"}
        | {"schema": {"columns": [{"name": "age", "type": "integer", "kind": "numeric"}], "licence": HOSTILE}}
    )
    text = render(datasets_table([info]))
    assert_inert(text)
    assert SHOWN in text
    frame = render(frame_table(HOSTILE, pd.DataFrame({HOSTILE: [HOSTILE]})))
    assert_inert(frame)
    assert frame.count(SHOWN) == 3


def test_schema_table_and_notebook_html_of_a_dataset_are_inert(server: ScriptedServer) -> None:
    hostile = {**DESCRIBED, "description": HOSTILE}
    hostile["schema"] = {
        "columns": [{"name": "age", "type": "integer", "kind": "numeric", "description": HOSTILE}],
        "licence": HOSTILE,
    }
    server.reply("GET", "/api/v1/datasets/site-a/patients", (200, hostile))
    with server.client() as client:
        dataset = client.dataset("site-a/patients")
    assert_inert(render(schema_table(dataset)))
    page = dataset._repr_html_()
    assert_inert(page)
    assert page.count("ok\\x1b[2K") == 3  # description, licence and the column's description
    assert "[bold]" in page and "<bold>" not in page
    assert dataset.description == HOSTILE  # the data itself is kept as it came


def test_notebook_html_helpers_escape_markup_and_hidden_characters() -> None:
    page = fields_html(HOSTILE, [("reason", HOSTILE + "<script>")]) + table_html([HOSTILE], [[HOSTILE]])
    assert_inert(page)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("\\u202eesrever") == 4


def test_a_jobs_repr_html_and_wait_error_are_inert(server: ScriptedServer) -> None:
    failed = job_json("failed", reason=HOSTILE)
    failed["tasks"][0]["error"] = HOSTILE
    server.reply("GET", "/api/v1/jobs/job_1", (200, failed))
    with server.client() as client:
        job = client.job("job_1")
        for view in (repr(job), job._repr_html_()):
            assert_inert(view)
            assert "\\u202eesrever" in view
        with pytest.raises(Conflict) as refused:
            job.wait(progress=False, timeout=5)
    assert_inert(str(refused.value))
    assert "\\x1b[8mgone" in str(refused.value)
    assert job.reason == HOSTILE


def test_a_specs_repr_and_html_are_inert(server: ScriptedServer) -> None:
    server.reply(
        "GET", "/api/v1/specs/spec_1", (200, {**spec_json("failed"), "name": HOSTILE, "reason": HOSTILE})
    )
    with server.client() as client:
        spec = client.spec("spec_1")
    for view in (repr(spec), spec._repr_html_()):
        assert_inert(view)
        assert "\\u202eesrever" in view


def test_a_results_repr_and_html_are_inert() -> None:
    data: dict[str, Any] = {"sites": {"site-a/patients": {"type": "json", "value": {HOSTILE: [HOSTILE]}}}}
    result = Result(JobResult(job_id="job_1", model="custom@1.0.0", result=data))
    for view in (repr(result), result._repr_html_()):
        assert_inert(view)
        assert "\\x1b[8mgone" in view


def test_an_orchestrator_refusal_quoting_hostile_text_becomes_an_inert_error(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/jobs/job_1", (404, {"detail": f"unknown job {HOSTILE}\nsecond line"}))
    with server.client() as client, pytest.raises(NotFound) as refused:
        client.job("job_1")
    assert_inert(str(refused.value))
    assert "\n" not in str(refused.value)
    assert f"unknown job {SHOWN}\\nsecond line" == str(refused.value)
