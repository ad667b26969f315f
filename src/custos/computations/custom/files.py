"""File outputs of reviewed custom code: the types a request may declare, and how the gateway knows a
file of each type from its bytes alone.

A request declares `output: file:TYPE` (TYPE one of `FILE_TYPES`) and its function returns the file's
`bytes`. The output is encoded as `{"type": "file", "file_type": TYPE, "data": bytes}`, and `data`
travels as a blob (`custos.core.blobs`). `check_file` is strict and simple: the declared type must be
recognised from the bytes themselves (a signature, or text that parses), never from a name or a
claim, and the file must be within its size cap; more is refused, never truncated.

This module is imported by the in-sandbox runtime: it imports nothing but the standard library.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from typing import Any

from custos.core.errors import InvalidInput, PolicyDenied

FILE_PREFIX = "file:"  # a file output is declared as file:TYPE
FILE_KIND = "file"  # the `type` of an encoded file output

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PDF_TAIL_BYTES = 1024  # where a PDF's %%EOF marker must be
_PARQUET_MAGIC = b"PAR1"


def _text(data: bytes, what: str) -> str:
    if b"\x00" in data:
        raise ValueError(f"it holds a NUL byte, which {what} text never does")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None


def _csv(data: bytes) -> int:
    reader = csv.reader(io.StringIO(_text(data, "CSV"), newline=""), strict=True)
    try:
        records = sum(1 for _ in reader)
    except csv.Error:
        # The csv module's message may quote the file: say only where.
        raise ValueError(f"it does not parse as CSV (line {reader.line_num})") from None
    return max(records - 1, 0)  # the header is not a row


def _json(data: bytes) -> int:
    try:
        json.loads(_text(data, "JSON"))
    except ValueError:
        raise ValueError("it does not parse as JSON") from None
    return 0


def _png(data: bytes) -> int:
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("it does not start with the PNG signature")
    return 0


def _pdf(data: bytes) -> int:
    if not data.startswith(b"%PDF-"):
        raise ValueError("it does not start with %PDF-")
    if b"%%EOF" not in data[-_PDF_TAIL_BYTES:]:
        raise ValueError("it does not end with %%EOF")
    return 0


def _parquet(data: bytes) -> int:
    if len(data) < 12 or not (data.startswith(_PARQUET_MAGIC) and data.endswith(_PARQUET_MAGIC)):
        raise ValueError("it does not start and end with PAR1")
    return 0


# Each allowed type and its recogniser: it raises ValueError (saying why, never quoting the file) or
# returns the file's number of table rows (0 for a type that is not a table the gateway reads).
_RECOGNISERS: dict[str, Callable[[bytes], int]] = {
    "csv": _csv,
    "json": _json,
    "parquet": _parquet,
    "pdf": _pdf,
    "png": _png,
}
FILE_TYPES: tuple[str, ...] = tuple(sorted(_RECOGNISERS))


def file_type_of(output: str) -> str | None:
    """`png` for the declared output `file:png`; None for an output that is not a file."""
    return output.removeprefix(FILE_PREFIX) if output.startswith(FILE_PREFIX) else None


def file_output(file_type: str) -> str:
    """The declared output for a file of `file_type` (`png` -> `file:png`); InvalidInput for a type
    that is not allowed."""
    if file_type not in _RECOGNISERS:
        raise InvalidInput(f"file type {file_type!r} is not allowed; use one of {', '.join(FILE_TYPES)}")
    return FILE_PREFIX + file_type


def encode_file(data: bytes, output: str | None) -> dict[str, Any]:
    """A function's `bytes` as the file its request declares; InvalidInput if it declares none.
    The message quotes nothing: at a gateway it leaves through the redaction of errors."""
    file_type = file_type_of(output or "")
    if file_type is None:
        raise InvalidInput(
            f"the function returned bytes, but the request declares output {output or 'table'}; "
            f"declare a file as file:TYPE, with TYPE one of {', '.join(FILE_TYPES)}"
        )
    return {"type": FILE_KIND, "file_type": file_type, "data": data}


def check_file(encoded: Mapping[str, Any], file_type: str, *, max_bytes: int, max_rows: int) -> None:
    """Raise PolicyDenied unless `encoded` is a file output whose bytes are a `file_type` file of at
    most `max_bytes` bytes (and, for a CSV file, at most `max_rows` rows after its header)."""
    data = encoded.get("data")
    if not isinstance(data, bytes) or not data:
        raise PolicyDenied("the output is refused: a file output needs its bytes, and at least one")
    if encoded.get("file_type") != file_type:
        # Not echoed: the sandboxed code could have written anything there.
        raise PolicyDenied(f"the output is refused: the code declared a {file_type} file, not another type")
    if len(data) > max_bytes:
        raise PolicyDenied(
            f"the output is refused: a file of {len(data)} bytes is over the cap of {max_bytes} bytes"
        )
    try:
        rows = _RECOGNISERS[file_type](data)
    except ValueError as exc:
        raise PolicyDenied(
            f"the output is refused: the code declared a {file_type} file, but {exc}"
        ) from None
    if rows > max_rows:
        raise PolicyDenied(
            f"the output is refused: a {file_type} file of {rows} rows is over the cap of {max_rows} rows"
        )
