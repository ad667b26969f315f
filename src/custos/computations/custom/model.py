"""Reviewed custom code: the `custom` model that runs a researcher's function, its output encoding
and caps, the redaction of its errors, and the mock-backed DAL reader it is prototyped with.

A custom function (or the entrypoint of a custom code package) has the signature

    def fn(dal: DalReader, datasets: list[str], params: dict) -> pandas.DataFrame | dict | bytes

and reads rows only with `dal.read(dataset, columns, filters)`. At a gateway it runs in the sandboxed
runtime, once per task, with `datasets` the one dataset of the task (its name at the site) and a DAL
that serves the columns the custodian's policy grants to model `custom`. On mock data
(`Client.run_on_mock`) the very same source runs through `custos.testing.readers.TableDalReader`,
which serves the mock tables with the DAL's projection, filters and refusals, so code that works on
mock works unchanged.

Outputs are encoded as JSON (`{"type": "table", "columns", "rows"}` or `{"type": "json", "value"}`),
or as a file whose bytes travel as a blob (`custos.computations.custom.files`); the gateway, not the
sandboxed code, checks them against the declared type and the caps (`check_output`) and redacts the
message of a failure (`redact_error`).

This module is imported by the in-sandbox runtime: it imports pandas and DuckDB only when used.
"""

from __future__ import annotations

import builtins
import json
import linecache
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from custos.computations.base import DalReader, Disclosure, DpPlan, Final, Json, NextRound, Step
from custos.computations.custom.files import FILE_KIND, check_file, encode_file, file_type_of
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.schema import DatasetSchema
from custos.privacy.controls import DpSettings

if TYPE_CHECKING:
    import pandas as pd

    from custos.core.wire import CodeSource

CODE_KEY = "code"  # the key of a custom task's round_input that holds its CustomCodeTask
MAX_REDACTED_CHARS = 300

CustomFunction = Callable[[DalReader, list[str], dict[str, Any]], Any]


@dataclass(frozen=True)
class OutputCaps:
    """The most a custom function may return from one site; more is refused, never truncated."""

    rows: int = 1000
    cells: int = 20_000
    json_bytes: int = 64 * 1024
    file_bytes: int = 1024 * 1024


DEFAULT_CAPS = OutputCaps()


# --- running a function ---------------------------------------------------------------------------


def load_function(source: str, function: str, *, origin: str = "custom") -> CustomFunction:
    """Execute `source` as a fresh module and return its `function`. Tracebacks show its lines."""
    filename = f"<{origin}:{function}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"custos_custom_{function}"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - reviewed code, in the sandbox
    fn = namespace.get(function)
    if not callable(fn):
        raise InvalidInput(f"the code defines no function named {function}")
    return fn  # type: ignore[no-any-return]


def run_function(
    source: str,
    function: str,
    dal: DalReader,
    datasets: list[str],
    params: Mapping[str, Any],
    output: str | None = None,
) -> Json:
    """Run `function` of `source` and encode what it returns as the `output` declared (see
    `encode_output`)."""
    fn = load_function(source, function)
    return encode_output(fn(dal, list(datasets), dict(params)), output)


def run_code(
    code: CodeSource,
    function: str,
    dal: DalReader,
    datasets: list[str],
    params: Mapping[str, Any],
    output: str | None = None,
) -> Json:
    """Run a function's source, or a package's entrypoint imported from its archive in memory
    (`custos.computations.custom.importer`), and encode what it returns."""
    if code.package_b64 is None:
        return run_function(code.source, function, dal, datasets, params, output)
    from custos.computations.custom.importer import package_function

    with package_function(code.archive(), function) as fn:
        return encode_output(fn(dal, list(datasets), dict(params)), output)


def encode_output(value: Any, output: str | None = None) -> Json:
    """A DataFrame (or Arrow table) as `{"type": "table", "columns", "rows"}`; a dict as
    `{"type": "json", "value"}`; bytes as the file the `output` declared (`file:png`: see
    `custos.computations.custom.files.encode_file`). Anything else is refused."""
    if isinstance(value, bytes | bytearray | memoryview):
        return encode_file(bytes(value), output)
    if isinstance(value, pa.Table):
        value = value.to_pandas()
    if isinstance(value, dict):
        try:
            text = json.dumps(value, default=_plain, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"the function returned a dict that is not plain JSON: {exc}") from None
        return {"type": "json", "value": json.loads(text)}
    if type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas"):
        rows = json.loads(value.to_json(orient="values", date_format="iso"))
        return {"type": "table", "columns": [str(c) for c in value.columns], "rows": rows}
    raise InvalidInput(
        f"the function returned a {type(value).__name__}; return a pandas DataFrame, a dict or bytes"
    )


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def decode_output(encoded: Mapping[str, Any]) -> pd.DataFrame | dict[str, Any] | bytes:
    """What `encode_output` encoded: a DataFrame for a table, the dict for json, the bytes of a file."""
    if encoded.get("type") == FILE_KIND and isinstance(encoded.get("data"), bytes):
        data: bytes = encoded["data"]
        return data
    if encoded.get("type") == "table":
        import pandas as pd

        return pd.DataFrame(encoded["rows"], columns=encoded["columns"])
    if encoded.get("type") == "json":
        value: dict[str, Any] = dict(encoded["value"])
        return value
    raise InvalidInput(f"not a custom code output: type {encoded.get('type')!r}")


# --- what the gateway checks ----------------------------------------------------------------------


def check_output(encoded: Mapping[str, Any], declared: str, caps: OutputCaps = DEFAULT_CAPS) -> None:
    """Raise PolicyDenied unless `encoded` is of the `declared` type and within `caps`. A file must be
    of its declared type, recognised from its bytes (`custos.computations.custom.files.check_file`)."""
    kind = encoded.get("type")
    file_type = file_type_of(declared)
    if file_type is not None:
        if kind != FILE_KIND:
            raise PolicyDenied(f"the output is refused: the code declared a {declared} output, not {kind}")
        check_file(encoded, file_type, max_bytes=caps.file_bytes, max_rows=caps.rows)
        return
    if kind != declared:
        raise PolicyDenied(f"the output is refused: the code declared a {declared} output, not {kind}")
    if kind == "table":
        rows, columns = encoded.get("rows"), encoded.get("columns")
        if not isinstance(rows, list) or not isinstance(columns, list):
            raise PolicyDenied("the output is refused: a table needs its columns and rows")
        if len(rows) > caps.rows:
            raise PolicyDenied(
                f"the output is refused: a table of {len(rows)} rows is over the cap of {caps.rows} rows"
            )
        if any(not isinstance(r, list) or len(r) != len(columns) for r in rows):
            raise PolicyDenied("the output is refused: every row needs one value per column")
        if len(rows) * len(columns) > caps.cells:
            raise PolicyDenied(
                f"the output is refused: {len(rows) * len(columns)} cells are over the cap of {caps.cells}"
            )
    else:
        size = len(json.dumps(encoded.get("value"), separators=(",", ":")).encode())
        if size > caps.json_bytes:
            raise PolicyDenied(
                f"the output is refused: {size} bytes of JSON are over the cap of {caps.json_bytes} bytes"
            )


_SAFE_TYPES = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
) | {"CustosError", "InvalidInput", "PermissionDenied", "PolicyDenied", "SandboxError", "LimitExceeded"}
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"[-+]?\.?\d[\w.,:+-]*")


def schema_vocabulary(schema: DatasetSchema) -> list[str]:
    """Words that are data values of a dataset (its categories), to redact from messages."""
    return sorted({c for column in schema.columns for c in column.categories or []})


def redact_error(kind: str, message: str, vocabulary: Iterable[str] = ()) -> str:
    """`Type: message` with data values taken out: quoted strings, numbers and `vocabulary`'s words.
    A type that is not a built-in or Custos exception could spell data, so it becomes Exception."""
    kind = kind if kind in _SAFE_TYPES else "Exception"
    text = _QUOTED.sub("'…'", message)
    text = _NUMBER.sub("#", text)
    for word in sorted(set(vocabulary), key=len, reverse=True):
        if word:
            text = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", "…", text, flags=re.IGNORECASE)
    text = " ".join(text.split())
    if len(text) > MAX_REDACTED_CHARS:
        text = text[:MAX_REDACTED_CHARS] + "…"
    return f"{kind}: {text} (data values redacted; the custodian holds the full log)"


# --- the model ------------------------------------------------------------------------------------


class CustomModel:
    """Reviewed custom code as a one-round model: each site runs the function, the orchestrator keeps
    every site's output side by side (`{"sites": {gateway/dataset: output}}`)."""

    name = "custom"
    version = "1.0.0"

    def validate_params(
        self, params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]
    ) -> None:
        """Any JSON object: the parameters are the function's, and the custodian reviewed them."""

    def columns_used(self, params: Mapping[str, Any]) -> list[str]:
        """Not known before the code runs: the DAL grants what the policy gives model `custom`."""
        return []

    def start(self, params: Mapping[str, Any]) -> NextRound:
        return NextRound(round_input={}, state={})

    def aggregate(
        self, params: Mapping[str, Any], state: Json, site_results: Mapping[str, Json], rules: Disclosure
    ) -> Step:
        return Final({"sites": {ref: dict(result) for ref, result in sorted(site_results.items())}})

    def compute_site(
        self, dal: DalReader, dataset: str, params: Mapping[str, Any], round_input: Json
    ) -> Json:
        from custos.core.wire import CustomCodeTask  # here: the sandbox's start-up needs no API model

        code = CustomCodeTask.model_validate(round_input.get(CODE_KEY))
        return run_code(code, code.function, dal, [dataset], params, code.output)

    def filter_site_result(self, params: Mapping[str, Any], result: Json, privacy: Disclosure) -> Json:
        """Unchanged: the gateway checks a custom output against its declared type and caps instead."""
        return result

    def plan_dp(self, params: Mapping[str, Any], schema: DatasetSchema, dp: DpSettings) -> DpPlan:
        raise PolicyDenied("custom code cannot run under a differential privacy policy")


# --- prototyping on mock data ---------------------------------------------------------------------
