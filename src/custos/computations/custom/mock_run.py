"""Custom code's run on the mock tables as a code request carries it (`custos.core.wire.MockRun`):
each dataset's encoded output rendered as its type shows it (`rendered`), or the error the run raised
with where in the submitted code (`failed`), the whole cut to fit its bound (`fit`), and the one-line
account of a part that the CLI and the portal print (`summary`).

The SDK builds these on the author's machine (`Client.mock_run`); nothing here runs at a site.
"""

from __future__ import annotations

import hashlib
import json
import math
import traceback
from collections.abc import Mapping
from typing import Any

from custos.computations.custom.files import FILE_KIND
from custos.core.wire import MAX_MOCK_RUN_CHARS, MockCell, MockOutput, MockRun, mock_run_chars

MAX_ERROR_CHARS = 4000  # the end of a traceback: its last frames and the exception


def _cell(value: Any) -> MockCell:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def rendered(ref: str, encoded: Mapping[str, Any]) -> MockOutput:
    """An encoded output (`custos.computations.custom.wire.encode_output`) as the reviewers read it: a
    table's columns and rows, a JSON value as indented text, a file as its type, size and SHA-256."""
    kind = encoded.get("type")
    if kind == "table":
        rows = [[_cell(v) for v in row] for row in encoded.get("rows") or []]
        columns = [str(c) for c in encoded.get("columns") or []]
        return MockOutput(
            dataset=ref, ok=True, kind="table", columns=columns, rows=rows, total_rows=len(rows)
        )
    if kind == "json":
        text = json.dumps(encoded.get("value"), indent=2, ensure_ascii=False, sort_keys=True)
        return MockOutput(dataset=ref, ok=True, kind="json", text=text)
    if kind == FILE_KIND:
        data = bytes(encoded.get("data") or b"")
        return MockOutput(
            dataset=ref,
            ok=True,
            kind="file",
            file_type=str(encoded.get("file_type")),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    raise ValueError(f"not a custom code output: type {kind!r}")


def failed(ref: str, exc: BaseException, sources: Mapping[str, str]) -> MockOutput:
    """What a failed run tells the reviewers: the frames of the submitted code (`sources`, by the file
    names its tracebacks give them) and the exception, its end kept when it is long."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in sources]
    lines = ["Traceback (in the submitted code):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).rstrip("\n")
    if len(text) > MAX_ERROR_CHARS:
        text = "…" + text[-(MAX_ERROR_CHARS - 1) :]
    return MockOutput(dataset=ref, ok=False, error=text)


def _json_chars(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _shrunk(output: MockOutput, excess: int) -> MockOutput:
    """`output` at least `excess` characters of JSON shorter: its last rows, or the end of its text or
    error, cut; or, when neither is long enough, reduced to what it is."""
    if output.rows:
        keep, cut = len(output.rows), 0
        while keep > 0 and cut < excess:
            keep -= 1
            cut += _json_chars(output.rows[keep]) + 1
        return output.model_copy(update={"rows": output.rows[:keep], "truncated": True})
    if len(output.text) > excess:
        return output.model_copy(update={"text": output.text[: len(output.text) - excess], "truncated": True})
    if len(output.error) > excess:
        return output.model_copy(update={"error": "…" + output.error[excess + 1 :], "truncated": True})
    return MockOutput(
        dataset=output.dataset,
        ok=output.ok,
        error=output.error[-200:],
        kind=output.kind,
        total_rows=output.total_rows,
        file_type=output.file_type,
        size=output.size,
        sha256=output.sha256,
        truncated=True,
    )


def fit(run: MockRun, limit: int = MAX_MOCK_RUN_CHARS) -> MockRun:
    """`run` within `limit` characters (`mock_run_chars`): the largest part is cut first."""
    outputs = list(run.outputs)
    for _ in range(4 * len(outputs) + 4):
        current = run.model_copy(update={"outputs": outputs})
        excess = mock_run_chars(current) - limit
        if excess <= 0:
            return current
        largest = max(range(len(outputs)), key=lambda i: len(outputs[i].model_dump_json()))
        outputs[largest] = _shrunk(outputs[largest], excess)
    raise ValueError(f"a mock run of {len(outputs)} datasets does not fit in {limit} characters")


def summary(output: MockOutput) -> str:
    """One line for a part: `a table of 12 rows`, `JSON`, `a png file of 1,234 bytes`, or `failed`."""
    if not output.ok:
        return "failed" + (" (its error cut to fit)" if output.truncated else "")
    cut = ""
    if output.kind == "table":
        shown = len(output.rows)
        cut = f", the first {shown} shown" if shown < output.total_rows else ""
        return f"a table of {output.total_rows:,} rows and {len(output.columns)} columns{cut}"
    if output.kind == "json":
        return "JSON" + (", cut to fit" if output.truncated else "")
    return f"a {output.file_type} file of {output.size or 0:,} bytes, SHA-256 {output.sha256}"
