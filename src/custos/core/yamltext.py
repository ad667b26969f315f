"""Safe parsing of the YAML files people write (projects, catalogues, policies): bounded size, no
code-executing tags, and one readable sentence saying where the YAML is broken."""

from __future__ import annotations

from typing import Any

import yaml

from custos.core.errors import InvalidInput


def parse_yaml_mapping(raw: str | bytes, source: str, *, max_bytes: int, expected: str) -> dict[str, Any]:
    """Parse `raw` as a YAML mapping. `expected` names its keys, for the error when it is not one."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise InvalidInput(f"{source} is larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data: Any = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise InvalidInput(f"{source} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise InvalidInput(f"{source}: malformed YAML{where}" + (f": {problem}" if problem else "")) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: must be a mapping with {expected}")
    return data
