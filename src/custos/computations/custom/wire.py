"""Custom code's outputs as they travel: a DataFrame (or Arrow table) as
`{"type": "table", "columns", "rows"}`, a dict as `{"type": "json", "value"}`, and bytes as the file
the request declares, whose bytes travel as a blob (`custos.computations.custom.files`).

This module is imported by the in-sandbox runtime: it imports pandas only to decode a table.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from custos.computations.custom.files import FILE_KIND, encode_file
from custos.core.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

Json = dict[str, Any]


def encode_output(value: Any, output: str | None = None) -> Json:
    """A DataFrame (or Arrow table) as `{"type": "table", "columns", "rows"}`; a dict as
    `{"type": "json", "value"}`; bytes as the file the `output` declared (`file:png`: see
    `custos.computations.custom.files.encode_file`). Anything else is refused."""
    if isinstance(value, bytes | bytearray | memoryview):
        return encode_file(bytes(value), output)
    # An Arrow table only if pyarrow is loaded (the orchestrator imports this module, not pyarrow).
    arrow = sys.modules.get("pyarrow")
    if arrow is not None and isinstance(value, arrow.Table):
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
