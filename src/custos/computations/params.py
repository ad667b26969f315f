"""Parameter checks every built-in model shares: one readable line for the first error pydantic finds
(the field, what was wrong, and, for an unknown field, the fields accepted there), the check of each
row filter's value against its op, and the check that every column the params name is one the compute
spec allows and the dataset has."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from custos.core.dal_wire import Filter
from custos.core.errors import InvalidInput
from custos.core.schema import DatasetSchema

# The column types a model reads as numbers.
NUMERIC_TYPES = frozenset({"integer", "float"})


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


def check_filter(index: int, flt: Filter) -> None:
    """Raise InvalidInput, naming `filters[index].value`, unless the value fits the filter's op."""
    field = f"filters[{index}].value"
    if flt.op in ("in", "not_in"):
        if not isinstance(flt.value, list) or not flt.value:
            raise InvalidInput(f"{field}: op {flt.op!r} needs a non-empty list of values, got {flt.value!r}")
    elif flt.op in ("is_null", "not_null"):
        if flt.value is not None:
            raise InvalidInput(f"{field}: op {flt.op!r} takes no value, got {flt.value!r}")
    elif flt.value is None or isinstance(flt.value, list):
        raise InvalidInput(f"{field}: op {flt.op!r} needs one number, string or boolean, got {flt.value!r}")


def check_filters(filters: Sequence[Filter]) -> None:
    for i, flt in enumerate(filters):
        check_filter(i, flt)


def check_column_refs(refs: Sequence[tuple[str, str]], schema: DatasetSchema, columns: Sequence[str]) -> None:
    """Raise InvalidInput, naming the field, unless each (field, column) of `refs` names a column that
    the spec's `columns` allow and the dataset's `schema` has."""
    allowed = list(columns)
    for field, name in refs:
        if name not in allowed:
            raise InvalidInput(f"{field}: unknown column {name!r}; the spec allows: {', '.join(allowed)}")
        if name not in schema.names:
            raise InvalidInput(
                f"{field}: column {name!r} is not in the dataset; it has: {', '.join(schema.names)}"
            )


def columns_named(refs: Sequence[tuple[str, str]]) -> list[str]:
    """The columns of `refs`, each once, in the order they appear."""
    return list(dict.fromkeys(column for _, column in refs))
