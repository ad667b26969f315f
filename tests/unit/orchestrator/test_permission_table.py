"""The permission table is complete and default-deny: every route of the API is in it, every route it
names exists, and its conditions decide as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from custos.core.errors import InvalidInput, PermissionDenied
from custos.core.identity import Identity, Role
from custos.orchestrator.app import create_app
from custos.orchestrator.portal import ROUTERS
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.certs import create_root_ca
from custos.policy.permissions import (
    PUBLIC,
    Resource,
    can_perform,
    check_perform,
    check_role,
    load_permissions,
    permission_table,
)


def _routes(tmp_path: Path) -> set[str]:
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{tmp_path / 'o.db'}", audit_path=tmp_path / "audit.log"
    )
    root, _ = create_root_ca("perm-test")
    app = create_app(settings, root)
    # API routes, from the OpenAPI schema (FastAPI's public view of every included router), plus the
    # plain routes FastAPI adds for its documentation pages.
    api = {f"{m.upper()} {path}" for path, item in app.openapi()["paths"].items() for m in item}
    plain = {
        f"{method} {route.path}"
        for route in app.routes
        if isinstance(route, Route) and not isinstance(route, APIRoute)
        for method in route.methods or ()
        if method != "HEAD"
    }
    return api | plain | _pages()


def _pages() -> set[str]:
    """The portal's pages: routes too, left out of the OpenAPI schema (the app includes these routers)."""
    return {
        f"{method} {route.path}"
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }


def test_every_page_of_the_portal_is_in_the_table() -> None:
    pages = _pages()
    assert {"GET /", "GET /datasets", "GET /signin", "POST /signout"} <= pages
    assert pages - set(permission_table().routes) == set(), "pages without a permission rule"


def test_every_route_is_in_the_table_and_every_table_route_exists(tmp_path: Path) -> None:
    routes = _routes(tmp_path)
    table = permission_table()
    assert routes - set(table.routes) == set(), "routes without a permission rule"
    assert set(table.routes) - routes == set(), "rules for routes that do not exist"


def test_the_table_covers_the_operations_the_product_promises() -> None:
    ops = set(permission_table().operations)
    for op in (
        "dataset.view",
        "policy.write",
        "spec.create",
        "spec.manage",
        "job.submit",
        "job.view",
        "result.download",
        "code.review",
        "release.review",
        "user.manage",
        "audit.view",
    ):
        assert op in ops


def test_public_routes_are_only_health_sign_in_and_the_crl() -> None:
    public = {r for r, op in permission_table().routes.items() if op == PUBLIC}
    assert public == {
        "GET /openapi.json",
        "GET /docs",
        "GET /docs/oauth2-redirect",
        "GET /redoc",
        "GET /healthz",
        "GET /static/{name}",
        "GET /signin",
        "POST /signin",
        "POST /api/v1/auth/challenge",
        "POST /api/v1/auth/token",
        "POST /api/v1/auth/login",
        "GET /api/v1/crl",
    }


ALICE = Identity("alice", "university", Role.LEAD_RESEARCHER)
MEMBER = Identity("max", "university", Role.MEMBER_RESEARCHER)
ADMIN_A = Identity("ann", "hospital-a", Role.ORG_ADMIN)
ROOT = Identity("root", "operator", Role.PROJECT_ADMIN)


def test_conditions_self_org_and_any() -> None:
    table = permission_table()
    own = Resource("alice", "university")
    colleague = Resource("bob", "university")
    foreign = Resource("eve", "elsewhere")
    assert can_perform(table, "job.cancel", ALICE, own)
    assert not can_perform(table, "job.cancel", ALICE, colleague)  # lead: self
    assert can_perform(table, "job.view", ALICE, colleague)  # lead: org
    assert not can_perform(table, "job.view", ALICE, foreign)
    assert can_perform(table, "job.view", ROOT, foreign)  # project admin: any
    assert can_perform(table, "policy.write", ADMIN_A, Resource(None, "hospital-a"))
    assert not can_perform(table, "policy.write", ADMIN_A, Resource(None, "hospital-b"))


def test_member_researchers_cannot_write_policies_review_or_release() -> None:
    table = permission_table()
    for op in ("policy.write", "code.review", "release.review", "job.submit", "spec.create"):
        with pytest.raises(PermissionDenied, match=f"may not perform {op}"):
            check_role(table, op, MEMBER)


def test_unknown_operation_and_unlisted_role_are_denied() -> None:
    table = permission_table()
    assert not can_perform(table, "no.such.operation", ROOT)
    with pytest.raises(PermissionDenied, match="denied by default"):
        table.operation_for("DELETE", "/api/v1/everything")
    gateway = Identity("site-a", "hospital-a", Role.GATEWAY)
    assert not can_perform(table, "job.view", gateway, Resource("x", "hospital-a"))
    with pytest.raises(PermissionDenied, match="allowed for the role: none"):
        check_perform(table, "spec.create", gateway)


def test_named_conditions_match_case_insensitively() -> None:
    table = load_permissions(
        "format_version: 1\n"
        "operations:\n"
        "  x.do: {lead_researcher: [o:University, n:BOB]}\n"
        "routes: {GET /x: x.do}\n"
    )
    assert can_perform(table, "x.do", ALICE)
    assert can_perform(table, "x.do", Identity("bob", "elsewhere", Role.LEAD_RESEARCHER))
    assert not can_perform(table, "x.do", Identity("eve", "elsewhere", Role.LEAD_RESEARCHER))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("format_version: 1\noperations: {x: {lead_researcher: maybe}}\nroutes: {}\n", "condition"),
        ("format_version: 1\noperations: {x: {wizard: any}}\nroutes: {}\n", "wizard"),
        ("format_version: 1\noperations: {}\nroutes: {GET /x: y.do}\n", "unknown operation"),
        ("format_version: 1\noperations: {}\nroutes: {FETCH /x: public}\n", "METHOD /path"),
    ],
)
def test_a_malformed_table_is_refused_with_its_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_permissions(text)
