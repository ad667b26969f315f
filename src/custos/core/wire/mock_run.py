"""A code request's mock run: what the author's machine printed when it ran the code on each dataset's
public mock table before submitting it (`Client.mock_run`), carried for the reviewers to read beside
the code. The orchestrator never runs code, so nothing here is verified: it is the author's word,
bounded and shown as inert text.

Each dataset's part is its output as the code's output type renders it (a table's columns and first
rows, a JSON value as indented text, a file described by type, size and SHA-256), or the error the
run raised. The whole is at most `MAX_MOCK_RUN_CHARS` characters of compact JSON as the orchestrator
writes it back (`mock_run_chars`); the SDK cuts rows and text to fit (`truncated`), and the
orchestrator refuses more (422).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, FiniteFloat, StrictBool, StrictInt, StrictStr

from custos.core.refs import DatasetRefText
from custos.core.wire_base import WireModel

MAX_MOCK_RUN_CHARS = 32 * 1024
MockKind = Literal["table", "json", "file"]
# A cell as a table's JSON holds it; a nested value is rendered as its JSON text by the SDK.
MockCell = StrictStr | StrictBool | StrictInt | FiniteFloat | None
_MockColumn = Annotated[str, Field(max_length=1000)]


class MockOutput(WireModel):
    """One dataset's mock run: its output (`ok`) or the error it raised."""

    dataset: DatasetRefText
    ok: bool
    error: str = Field(
        default="", max_length=MAX_MOCK_RUN_CHARS, description="the error and where in the code it was raised"
    )
    kind: MockKind | None = Field(default=None, description="the output's type; none when the run failed")
    columns: list[_MockColumn] = Field(default_factory=list, max_length=10_000, description="a table's")
    rows: list[list[MockCell]] = Field(
        default_factory=list, max_length=MAX_MOCK_RUN_CHARS, description="a table's first rows"
    )
    total_rows: int = Field(default=0, ge=0, le=2**31 - 1, description="the rows the table had")
    text: str = Field(default="", max_length=MAX_MOCK_RUN_CHARS, description="a JSON value, indented")
    file_type: str | None = Field(default=None, max_length=16, description="a file's type, e.g. png")
    size: int | None = Field(default=None, ge=0, le=2**31 - 1, description="a file's bytes")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="a file's digest")
    truncated: bool = Field(default=False, description="rows or text were cut to fit the bound")


class MockRun(WireModel):
    """The author's run of the code on the datasets' mock tables, unverified."""

    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="the SHA-256 of the code that ran")
    outputs: list[MockOutput] = Field(min_length=1, max_length=50, description="one per dataset")

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)


def mock_run_chars(run: MockRun) -> int:
    """How long `run` is as the bound counts it: compact JSON, every character as itself."""
    return len(run.model_dump_json())
