"""A finished job's result, as named tables.

Models return JSON; the stats model, for example, returns lists of rows under "summaries",
"frequencies", "histograms", "quantiles" and "suppressed". `result_sections` turns any such JSON into
titled tables without knowing the model, so the SDK (pandas, notebooks) and the CLI (Rich) show the
same thing. Bytes are downloads, not cells: a model's weights (`save_model`), and the files custom
code returns (`save_file`), each shown as a "file of DATASET" table: its type, size and SHA-256.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from custos.computations.custom.files import FILE_KIND
from custos.core.blobs import Blobs, as_ref, internalize
from custos.core.errors import InvalidInput, PermissionDenied
from custos.core.inert import inert
from custos.core.wire import JobResult
from custos.sdk.display import table_html, text_html

if TYPE_CHECKING:
    # pandas takes half a second to import; only mocks and result tables need it.
    import pandas as pd

Cell = Any


@dataclass(frozen=True)
class Section:
    """One table of a result. `rows` hold raw JSON values; nested values stay nested."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def explode(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per element when a row's list values run in parallel: a histogram row
    {column, edges: [18, 30, 45], counts: [7, 9]} becomes {column, bin: "18 to 30", counts: 7}, ....
    Rows whose lists do not line up are kept whole."""
    lists = {k: v for k, v in row.items() if isinstance(v, list) and k != "edges"}
    lengths = {len(v) for v in lists.values()}
    if len(lengths) != 1:
        return [dict(row)]
    (length,) = lengths
    edges = row.get("edges")
    if edges is not None and not (isinstance(edges, list) and len(edges) == length + 1):
        return [dict(row)]
    rows = []
    for i in range(length):
        exploded: dict[str, Any] = {}
        for key, value in row.items():
            if key == "edges" and edges is not None:
                exploded["bin"] = f"{format_cell(edges[i])} to {format_cell(edges[i + 1])}"
            else:
                exploded[key] = value[i] if key in lists else value
        rows.append(exploded)
    return rows


def _rows_section(title: str, items: list[Any]) -> Section:
    if all(isinstance(item, Mapping) for item in items):
        items = [exploded for item in items for exploded in explode(item)]
        columns: list[str] = []
        for item in items:
            columns.extend(str(k) for k in item if str(k) not in columns)
        rows = [[item.get(c) for c in columns] for item in items]
        return Section(title, columns, rows)
    return Section(title, ["value"], [[item] for item in items])


def result_sections(result: Mapping[str, Any], prefix: str = "") -> list[Section]:
    """Tables for a result: one per list, one per mapping of scalars, nested mappings recursed, and the
    top-level scalars gathered in a final "result" table."""
    sections: list[Section] = []
    scalars: list[list[Cell]] = []
    for key, value in result.items():
        title = f"{prefix}{key}"
        if isinstance(value, list):
            sections.append(_rows_section(title, value))
        elif isinstance(value, Mapping):
            if all(_is_scalar(v) for v in value.values()):
                sections.append(Section(title, ["name", "value"], [[str(k), v] for k, v in value.items()]))
            else:
                sections.extend(result_sections(value, prefix=f"{title}."))
        else:
            scalars.append([key, value])
    if scalars:
        sections.append(Section(prefix.rstrip(".") or "result", ["name", "value"], scalars))
    return sections


def format_cell(value: Cell) -> str:
    """Text for one cell: floats to 6 significant digits, nested values as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, str | int):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Result:
    """The result of a finished job. `data` is the model's JSON, with its blobs (model weights) as bytes;
    `wire` is the JSON as sent, blobs as references; `tables()` gives it as DataFrames."""

    wire: JobResult
    blobs: Blobs = field(default_factory=dict)

    @property
    def job_id(self) -> str:
        return self.wire.job_id

    @property
    def model(self) -> str:
        return self.wire.model

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = internalize(self.wire.result, lambda digest, _size: self.blobs[digest])
        return data

    def sections(self) -> list[Section]:
        result = dict(self.wire.result)
        if self.model_bytes() is not None:
            del result["weights"]  # model weights are a download (`save_model`), not a table cell
        files = self._files()
        if not files:
            return result_sections(result)
        # So are custom code's files (`save_file`): a reviewer reads their type, size and digest.
        others = {ref: output for ref, output in result["sites"].items() if ref not in files}
        result = {k: v for k, v in result.items() if k != "sites"} | ({"sites": others} if others else {})
        return [*result_sections(result)] + [
            Section(
                f"file of {ref}", ["name", "value"], [["type", kind], ["bytes", size], ["sha256", digest]]
            )
            for ref, (kind, digest, size) in files.items()
        ]

    def _files(self) -> dict[str, tuple[str, str, int]]:
        """Custom code's file outputs (`custos.computations.custom.files`): by dataset, their type,
        digest and size."""
        sites = self.wire.result.get("sites")
        found: dict[str, tuple[str, str, int]] = {}
        for ref, output in sites.items() if isinstance(sites, Mapping) else ():
            if isinstance(output, Mapping) and output.get("type") == FILE_KIND:
                blob = as_ref(output.get("data"))
                if blob is not None:
                    found[str(ref)] = (str(output.get("file_type")), *blob)
        return found

    def model_bytes(self) -> bytes | None:
        """The final model's weights as safetensors bytes, when the result carries them (`fedavg`)."""
        ref = as_ref(self.wire.result.get("weights"))
        if self.wire.result.get("weights_format") != "safetensors" or ref is None:
            return None
        return self.blobs[ref[0]]

    def save_model(self, path: str | Path) -> Path:
        """Write the final model's weights to `path` as a safetensors file. Read it with
        `safetensors.numpy.load_file` or `safetensors.torch.load_file`; nothing in it is pickled."""
        data = self.model_bytes()
        if data is None:
            withheld = self.wire.result.get("weights_withheld")
            if isinstance(withheld, str):
                raise PermissionDenied(f"the model weights of job {self.job_id} were withheld: {withheld}")
            raise InvalidInput(f"the result of job {self.job_id} ({self.model}) carries no model weights")
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, target)
        return target

    def save_file(self, path: str | Path, dataset: str | None = None) -> Path:
        """Write the file custom code returned for `dataset` (gateway/dataset; left out when the result
        holds one file) to `path`: exactly the bytes the reviewers released."""
        files = self._files()
        if not files:
            raise InvalidInput(f"the result of job {self.job_id} ({self.model}) holds no file")
        if dataset is None and len(files) > 1:
            raise InvalidInput(
                f"the result of job {self.job_id} holds a file of each of {', '.join(files)}; name one"
            )
        ref = next(iter(files)) if dataset is None else dataset
        if ref not in files:
            raise InvalidInput(
                f"the result of job {self.job_id} holds no file of {ref}; it holds {', '.join(files)}"
            )
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(self.blobs[files[ref][1]])
        os.replace(partial, target)
        return target

    def tables(self) -> dict[str, pd.DataFrame]:
        return {s.title: s.frame() for s in self.sections()}

    def __getitem__(self, key: str) -> Any:
        return self.wire.result[key]

    def __repr__(self) -> str:
        titles = ", ".join(f"{s.title} ({len(s.rows)})" for s in self.sections())
        return inert(f"<Result job={self.job_id} model={self.model} tables: {titles or 'none'}>")

    def _repr_html_(self) -> str:
        """The sections as the CLI shows them, cell by cell (`format_cell`), inert and escaped."""
        parts = [f"<p><b>job {text_html(self.job_id)}</b> — {text_html(self.model)}</p>"]
        for section in self.sections():
            parts.append(f"<h4>{text_html(section.title)}</h4>")
            parts.append(table_html(section.columns, ([format_cell(v) for v in row] for row in section.rows)))
        return "".join(parts)
