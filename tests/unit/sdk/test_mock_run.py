"""The author's mock run that a code request carries: the SDK runs the code on each dataset's mock
table (fetched from a scripted orchestrator at the SDK's network seam), keeps the output as its type
renders it or the error with the submitted code's frames, cuts it to its bound, and attaches it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from custos.computations.custom.mock_run import fit, rendered, summary
from custos.core.wire import (
    MAX_MOCK_RUN_CHARS,
    CodeRequestCreate,
    MockOutput,
    MockRun,
    code_digest,
    mock_run_chars,
)
from custos.data.ipc import table_to_ipc_b64

from .conftest import ScriptedServer

DATASET = "site-a/patients"
SCHEMA = {
    "columns": [
        {"name": "age", "type": "integer", "kind": "numeric", "min": 18, "max": 95},
        {"name": "region", "type": "string", "kind": "categorical", "categories": ["north", "south"]},
    ]
}
MOCK = pa.table({"age": [31, 62, 47, 80], "region": ["north", "south", "north", "south"]})
OLDER = """def older(dal, datasets, params):
    frame = dal.read(datasets[0], ["age", "region"]).to_pandas()
    return frame[frame["age"] >= params["min_age"]].sort_values("age")
"""
FAILING = """def fail(dal, datasets, params):
    raise ValueError("no column called " + params["column"])
"""
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC).isoformat()


def _serve_mock(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/me", (200, {"name": "alice", "org": "university", "role": "lead_researcher",
                                              "fingerprint": "ab" * 32}))  # fmt: skip
    info = {"id": "ds_1", "gateway": "site-a", "name": "patients", "description": "", "schema": SCHEMA,
            "row_count": 1000, "policy_yaml": None}  # fmt: skip
    server.reply("GET", f"/api/v1/datasets/{DATASET}", (200, info))
    mock = {"dataset": DATASET, "mock_arrow_b64": table_to_ipc_b64(MOCK)}
    server.reply("GET", f"/api/v1/datasets/{DATASET}/mock", (200, mock))


def _detail(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "code_0123456789abcdef", "state": "pending", "kind": "function", "function": body["function"],
        "digest": code_digest(body["source"]), "datasets": body["datasets"], "params": body["params"],
        "output": body["output"] or "table", "author": "alice", "org": "university", "orgs": ["hospital-a"],
        "reviews": [], "reason": None, "created_at": NOW, "decided_at": None, "source": body["source"],
        "mock_run": body.get("mock_run"),
    }  # fmt: skip


def test_submit_with_a_mock_run_attaches_the_rows_the_code_returned_on_the_mock(
    server: ScriptedServer,
) -> None:
    _serve_mock(server)
    expected = {"source": OLDER, "function": "older", "datasets": [DATASET], "params": {"min_age": 60},
                "output": None}  # fmt: skip
    expected["mock_run"] = None
    server.reply("POST", "/api/v1/code", (200, _detail(expected)))
    with server.client() as client:
        client.submit(OLDER, [DATASET], {"min_age": 60}, function="older", mock_run=True)
    (body,) = [b for method, path, b in server.requests if (method, path) == ("POST", "/api/v1/code")]
    run = MockRun.model_validate(body["mock_run"])
    assert run.digest == code_digest(OLDER) and run.ok
    (output,) = run.outputs
    assert (output.dataset, output.kind, output.columns) == (DATASET, "table", ["age", "region"])
    assert output.rows == [[62, "south"], [80, "south"]]
    assert output.total_rows == 2 and not output.truncated
    assert summary(output) == "a table of 2 rows and 2 columns"


def test_without_mock_run_nothing_runs_and_nothing_is_attached(server: ScriptedServer) -> None:
    body = {"source": FAILING, "function": "fail", "datasets": [DATASET], "params": {}, "output": None}
    server.reply("POST", "/api/v1/code", (200, _detail(body)))
    with server.client() as client:
        request = client.submit(FAILING, [DATASET], function="fail")
    assert request.mock_run is None
    assert [path for _, path, _ in server.requests] == ["/api/v1/code"]  # no mock table was fetched
    assert server.requests[0][2]["mock_run"] is None


def test_a_failure_of_the_code_is_kept_with_its_line_not_raised(server: ScriptedServer) -> None:
    _serve_mock(server)
    with server.client() as client:
        run = client.mock_run(FAILING, [DATASET], {"column": "bmi"}, function="fail")
    (output,) = run.outputs
    assert not run.ok and not output.ok and output.kind is None
    assert output.error.startswith("Traceback (in the submitted code):")
    assert 'File "<custom:fail>", line 2, in fail' in output.error
    assert output.error.endswith("ValueError: no column called bmi")
    assert "custos" not in output.error.replace("<custom:fail>", "")  # no frame of the SDK's own
    assert summary(output) == "failed"


def test_an_output_the_gateway_would_refuse_is_a_failed_run(server: ScriptedServer) -> None:
    _serve_mock(server)
    source = "def rows(dal, datasets, params):\n    return {'n': 1}\n"
    with server.client() as client:
        run = client.mock_run(source, [DATASET], function="rows", output="table")
    assert not run.ok
    assert "the code declared a table output, not json" in run.outputs[0].error


def test_a_json_value_is_indented_text_and_a_file_is_described(server: ScriptedServer) -> None:
    _serve_mock(server)
    counts = "def counts(dal, datasets, params):\n    return {'rows': 4, 'note': 'mock'}\n"
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
    image = f"def image(dal, datasets, params):\n    return {png!r}\n"
    with server.client() as client:
        as_json = client.mock_run(counts, [DATASET], function="counts", output="json").outputs[0]
        as_file = client.mock_run(image, [DATASET], function="image", output="file:png").outputs[0]
    assert as_json.kind == "json" and as_json.text == '{\n  "note": "mock",\n  "rows": 4\n}'
    assert (as_file.kind, as_file.file_type, as_file.size) == ("file", "png", len(png))
    assert as_file.sha256 == hashlib.sha256(png).hexdigest()
    assert summary(as_file) == f"a png file of 16 bytes, SHA-256 {as_file.sha256}"


def test_a_bad_argument_still_raises(server: ScriptedServer) -> None:
    with server.client() as client, pytest.raises(Exception, match="give function="):
        client.mock_run(OLDER, [DATASET])


def _table(rows: int) -> MockOutput:
    encoded = {
        "type": "table",
        "columns": ["n", "label"],
        "rows": [[i, f"row {i} \u202e"] for i in range(rows)],
    }
    return rendered(DATASET, encoded)


def test_a_large_table_is_cut_to_its_first_rows_within_the_bound() -> None:
    big = _table(20_000)
    run = fit(MockRun(digest="0" * 64, outputs=[big]))
    (output,) = run.outputs
    assert mock_run_chars(run) <= MAX_MOCK_RUN_CHARS
    assert mock_run_chars(run) > MAX_MOCK_RUN_CHARS - 100  # cut to the bound, not far below it
    assert output.truncated and output.total_rows == 20_000
    assert output.rows == big.rows[: len(output.rows)]
    assert summary(output).endswith(f"the first {len(output.rows)} shown")


def test_text_and_errors_and_many_datasets_fit_too() -> None:
    text = MockOutput(dataset="site-a/a", ok=True, kind="json", text="\x1b" * 30_000)  # 6 JSON chars each
    error = MockOutput(dataset="site-b/b", ok=False, error="E" * 30_000)
    tables = [_table(300).model_copy(update={"dataset": f"site-c/t{i}"}) for i in range(40)]
    run = fit(MockRun(digest="0" * 64, outputs=[text, error, *tables]))
    assert mock_run_chars(run) <= MAX_MOCK_RUN_CHARS
    assert len(run.outputs) == 42 and [o.dataset for o in run.outputs][:2] == ["site-a/a", "site-b/b"]
    assert run.outputs[1].error.endswith("EEE") and run.outputs[1].truncated


def test_a_small_run_is_left_as_it_is() -> None:
    run = MockRun(digest="0" * 64, outputs=[_table(3)])
    assert fit(run) == run


@pytest.mark.parametrize("cell", [float("nan"), float("inf"), [1, 2], {"a": 1}])
def test_a_cell_is_only_a_json_scalar_in_the_api(cell: Any) -> None:
    output = {"dataset": DATASET, "ok": True, "kind": "table", "columns": ["x"], "rows": [[cell]]}
    body = {"source": OLDER, "function": "older", "datasets": [DATASET],
            "mock_run": {"digest": "0" * 64, "outputs": [output]}}  # fmt: skip
    with pytest.raises(ValueError, match="rows"):
        CodeRequestCreate.model_validate(body)


def test_the_sdk_renders_nested_and_non_finite_cells_as_scalars() -> None:
    encoded = {"type": "table", "columns": ["x"], "rows": [[[1, 2]], [{"a": 1}], [float("nan")]]}
    assert rendered(DATASET, encoded).rows == [["[1, 2]"], ['{"a": 1}'], [None]]


def test_the_bound_is_in_the_api_description() -> None:
    schema = CodeRequestCreate.model_json_schema()["properties"]["mock_run"]
    assert schema["x-max-json-length"] == MAX_MOCK_RUN_CHARS
    assert f"at most {MAX_MOCK_RUN_CHARS} characters" in schema["description"]
