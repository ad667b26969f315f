"""The gate every request passes: the permission table names the route's operation, and the caller's
role must be able to perform it. Resource conditions (`self`, `org`) are checked by the services,
where the resource is loaded."""

from __future__ import annotations

from fastapi import Request
from fastapi.routing import APIRoute

from custos.core.errors import PermissionDenied
from custos.orchestrator.api.context import ServicesDep, get_caller, get_page_caller, is_page
from custos.policy.permissions import PUBLIC, check_role, permission_table


def authorize(request: Request, services: ServicesDep) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        raise PermissionDenied(f"no permission rule covers {request.method} {request.url.path}")
    table = permission_table()
    operation = table.operation_for(request.method, route.path)
    if operation == PUBLIC:
        return
    caller = get_page_caller(request, services) if is_page(request) else get_caller(request, services)
    check_role(table, operation, caller.identity)
