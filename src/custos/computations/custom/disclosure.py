"""What the gateway checks of custom code before its output leaves: the output caps and the check of an
encoded output against its declared type and caps (`check_output`). The sandboxed code decides none
of this. What a failure tells the researcher is `custos.computations.failures`'s.

A file output must be of its declared type, recognised from its bytes (`custos.computations.custom.files`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from custos.computations.custom.files import FILE_KIND, check_file, file_type_of
from custos.core.errors import PolicyDenied


@dataclass(frozen=True)
class OutputCaps:
    """The most a custom function may return from one site; more is refused, never truncated."""

    rows: int = 1000
    cells: int = 20_000
    json_bytes: int = 64 * 1024
    file_bytes: int = 1024 * 1024


DEFAULT_CAPS = OutputCaps()


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
