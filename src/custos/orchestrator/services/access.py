"""Resource-level permission checks for the services, on top of the route gate.

A resource of another org that the caller may not touch is reported as missing (404), so ids cannot
be probed; one of the caller's own org that the caller's role may not touch is refused (403)."""

from __future__ import annotations

from custos.core.errors import NotFound
from custos.core.identity import Identity
from custos.policy.permissions import Resource, can_perform, check_perform, permission_table


def check_resource(operation: str, caller: Identity, resource: Resource, missing: str) -> None:
    """Raise NotFound(`missing`) or PermissionDenied unless `caller` may perform `operation` on it."""
    table = permission_table()
    if can_perform(table, operation, caller, resource):
        return
    if resource.org is None or resource.org.casefold() != caller.org.casefold():
        raise NotFound(missing)
    check_perform(table, operation, caller, resource)


def can_see(operation: str, caller: Identity, resource: Resource) -> bool:
    return can_perform(permission_table(), operation, caller, resource)
