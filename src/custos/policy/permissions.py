"""The orchestrator's permission table: which role may perform which API operation, and on what.

The table is data (`permissions.yaml` beside this module). Decisions are pure functions: `check_*`
raises PermissionDenied with the reason, `can_*` returns a bool. Default deny throughout: an unknown
operation, a role the operation does not list, or the condition `none` refuses.

A decision comes in two steps. `check_role` runs before a route's handler, with no resource at hand:
it refuses a role that has no condition but `none` for the operation. `can_perform` runs where the
resource is loaded, with its owner and org, and evaluates `self`, `org` and the named conditions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from custos.core.errors import InvalidInput, PermissionDenied
from custos.core.identity import Identity, Role
from custos.core.yamltext import parse_yaml_mapping

PUBLIC = "public"
_KEYWORDS = frozenset({"any", "none", "self", "org"})


def _check_condition(value: str) -> str:
    text = value.strip()
    if text in _KEYWORDS or (text[:2] in ("o:", "n:") and len(text) > 2):
        return text
    raise ValueError(f"condition {value!r} is not one of any, none, self, org, o:NAME, n:NAME")


class PermissionTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1]
    operations: dict[str, dict[Role, list[str]]]
    routes: dict[str, str]

    @field_validator("operations", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        return {
            op: {role: [cond] if isinstance(cond, str) else cond for role, cond in (rules or {}).items()}
            for op, rules in value.items()
        }

    @field_validator("operations")
    @classmethod
    def _conditions(cls, value: dict[str, dict[Role, list[str]]]) -> dict[str, dict[Role, list[str]]]:
        return {
            op: {role: [_check_condition(c) for c in conds] for role, conds in rules.items()}
            for op, rules in value.items()
        }

    @field_validator("routes")
    @classmethod
    def _routes(cls, value: dict[str, str]) -> dict[str, str]:
        for route in value:
            method, _, path = route.partition(" ")
            if method not in {"GET", "POST", "PUT", "PATCH", "DELETE"} or not path.startswith("/"):
                raise ValueError(f"route {route!r} is not 'METHOD /path'")
        return value

    def operation_for(self, method: str, path: str) -> str:
        """The operation of a route, or PermissionDenied naming it when the table has no rule."""
        op = self.routes.get(f"{method} {path}")
        if op is None:
            raise PermissionDenied(f"no permission rule covers {method} {path}: denied by default")
        return op

    def conditions(self, operation: str, role: Role) -> list[str]:
        if operation not in self.operations:
            raise PermissionDenied(f"unknown operation {operation}: denied by default")
        return [c for c in self.operations[operation].get(role, []) if c != "none"]


@dataclass(frozen=True)
class Resource:
    """What a resource-level condition is evaluated against: who owns it, and which org."""

    owner: str | None
    org: str | None


def load_permissions(text: str, source: str = "permissions.yaml") -> PermissionTable:
    data = parse_yaml_mapping(
        text, source, max_bytes=256 * 1024, expected="format_version, operations, routes"
    )
    try:
        table = PermissionTable.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "table"
        raise InvalidInput(f"{source}: {where}: {first['msg']}") from exc
    unknown = sorted({op for op in table.routes.values() if op != PUBLIC} - set(table.operations))
    if unknown:
        raise InvalidInput(f"{source}: routes name unknown operation(s) {', '.join(unknown)}")
    return table


@cache
def permission_table() -> PermissionTable:
    """The table shipped with Custos."""
    text = files("custos.policy").joinpath("permissions.yaml").read_text(encoding="utf-8")
    return load_permissions(text)


def check_role(table: PermissionTable, operation: str, who: Identity) -> None:
    """Raise unless some condition could let `who`'s role perform `operation`."""
    if not table.conditions(operation, who.role):
        raise PermissionDenied(f"role {who.role.value} may not perform {operation}")


def _holds(condition: str, who: Identity, resource: Resource | None) -> bool:
    name, org = who.name.casefold(), who.org.casefold()
    if condition == "any":
        return True
    if condition.startswith("o:"):
        return org == condition[2:].casefold()
    if condition.startswith("n:"):
        return name == condition[2:].casefold()
    if resource is None:
        return False
    if condition == "self":
        return resource.owner is not None and resource.owner.casefold() == name
    if condition == "org":
        return resource.org is not None and resource.org.casefold() == org
    return False


def can_perform(
    table: PermissionTable, operation: str, who: Identity, resource: Resource | None = None
) -> bool:
    try:
        conditions = table.conditions(operation, who.role)
    except PermissionDenied:
        return False
    return any(_holds(c, who, resource) for c in conditions)


def check_perform(
    table: PermissionTable, operation: str, who: Identity, resource: Resource | None = None
) -> None:
    if not can_perform(table, operation, who, resource):
        allowed = ", ".join(table.conditions(operation, who.role)) or "none"
        raise PermissionDenied(
            f"{who.role.value} {who.name} of {who.org} may not perform {operation} here "
            f"(allowed for the role: {allowed})"
        )
