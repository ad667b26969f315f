"""One readable line for the first error pydantic finds in a model's params: the field, what was
wrong, and, for an unknown field, the fields that are accepted there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


def describe_params_error(
    error: Any, root: type[BaseModel], nested: Mapping[str, type[BaseModel]] = {}
) -> str:
    """`nested` names the model of each list field (e.g. {"filters": Filter}), for unknown fields."""
    loc = list(error["loc"])
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "params"
    if error["type"] == "extra_forbidden":
        parent = nested.get(str(loc[0]), root) if len(loc) > 1 else root
        return f"unknown field {field!r}; accepted fields: {', '.join(parent.model_fields)}"
    if error["type"] == "missing":
        return f"{field}: a value is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    return f"{field}: {message}, got {error['input']!r}"
