"""Parsing the JSON messages a model's two sides exchange (round inputs, site results, the
orchestrator's state) into their pydantic models, with an error that names the message and the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from custos.core.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def parse_message(model: type[M], value: Mapping[str, Any], what: str) -> M:
    """Parse one message; a malformed one raises InvalidInput saying which message and field."""
    try:
        return model.model_validate(dict(value))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "message"
        raise InvalidInput(f"{what} is malformed at {field}: {first['msg']}") from exc
