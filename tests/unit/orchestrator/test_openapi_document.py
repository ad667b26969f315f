"""The OpenAPI document states every refusal with the one error body (`ErrorPublic`), derived from
what each route is (api/responses.py); the attack on it through a real process is
tests/security/test_a54_openapi_is_honest.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from custos.orchestrator.api.responses import SECURITY_SCHEMES, implied_refusals
from custos.orchestrator.app import create_app
from custos.orchestrator.portal import ROUTERS
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.certs import create_root_ca
from custos.pki.kit import Kit
from custos.policy.permissions import PUBLIC, permission_table
from custos.testing.inprocess import bearer, orchestrator_in_process, provision_people

ERROR = {"$ref": "#/components/schemas/ErrorPublic"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    state = tmp_path_factory.mktemp("openapi")
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{state / 'o.db'}", audit_path=state / "audit.log"
    )
    return create_app(settings, create_root_ca("openapi-test")[0])


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in document["paths"].items() for m, op in ops.items()]


def _error_schema(answer: dict[str, Any]) -> Any:
    return answer["content"]["application/json"]["schema"]


def test_every_refusal_has_the_one_error_body(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ErrorPublic"]["required"] == ["detail"]
    assert "HTTPValidationError" not in schemas  # the app answers 400 with a detail, never FastAPI's 422
    for method, path, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                assert _error_schema(answer) == ERROR, f"{method} {path} {status}"


def test_refusals_follow_from_what_each_route_is(document: dict[str, Any]) -> None:
    table = permission_table()
    for method, path, operation in _operations(document):
        listed = set(operation["responses"])
        assert "400" in listed, f"{method} {path}"
        assert ("422" in listed) == (path in {"/api/v1/code", "/api/v1/models"} and method == "POST")
        public = table.operation_for(method, path) == PUBLIC
        assert {"401", "403"} <= listed or public, f"{method} {path}"
        if "{" in path:
            assert "404" in listed, f"{method} {path}"
        if "requestBody" in operation:
            assert "413" in listed, f"{method} {path}"
        assert ("503" in listed) == (path != "/healthz"), f"{method} {path}"


def _left_out_on_purpose(app: FastAPI) -> set[tuple[str, str]]:
    """Routes the document does not describe, deliberately: FastAPI's pages that render the document,
    and the portal's pages and files, for a browser signed in by the session cookie (docs/portal.md)."""
    fastapi_pages = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    portal = {
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    return {("GET", path) for path in fastapi_pages if path} | portal


def test_every_route_is_in_the_document_with_its_refusals_or_left_out_on_purpose(
    app: FastAPI, document: dict[str, Any]
) -> None:
    documented = {(method, path) for method, path, _ in _operations(document)}
    served = {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        if route.path is not None
        for method in route.methods or ()
        if method != "HEAD"
    }
    left_out = _left_out_on_purpose(app)
    assert served - left_out == documented
    assert left_out <= served  # the list names no route that is gone
    assert not {path for _, path in left_out if path.startswith("/api/")}  # the API is all described
    for method, path, operation in _operations(document):
        implied = {str(error.status) for error in implied_refusals(method, path, operation)}
        assert implied <= set(operation["responses"]), f"{method} {path}"


def test_every_answer_states_its_content_and_none_is_a_page(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if status != "204":
                assert answer.get("content"), f"{method} {path} {status}"
                assert "text/html" not in answer["content"], f"{method} {path} {status}"


def test_a_route_that_needs_a_sign_in_names_how_to_sign_in(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"] == SECURITY_SCHEMES
    assert SECURITY_SCHEMES["bearer"] == {**SECURITY_SCHEMES["bearer"], "type": "http", "scheme": "bearer"}
    table = permission_table()
    for method, path, operation in _operations(document):
        if table.operation_for(method, path) == PUBLIC:
            assert "security" not in operation, f"{method} {path}"
        else:
            assert operation["security"] == [{"bearer": []}, {"session": []}], f"{method} {path}"


def test_sign_in_states_its_limit_and_the_retry_header(document: dict[str, Any]) -> None:
    for path in ("/api/v1/auth/token", "/api/v1/auth/login"):
        answer = document["paths"][path]["post"]["responses"]["429"]
        assert "Retry-After" in answer["headers"]


PEOPLE = [("site-a", "gateway", "hospital-a", None)]


def test_a_row_count_past_the_database_column_is_refused_not_a_server_error(tmp_path: Path) -> None:
    kits: dict[str, Kit] = provision_people(tmp_path / "kits", "openapi", PEOPLE)
    schema = {"columns": [{"name": "age", "type": "integer", "kind": "numeric", "min": 0, "max": 9}]}
    dataset = {"name": "patients", "schema": schema, "row_count": 2**31, "mock_arrow_b64": ""}
    api: TestClient
    with orchestrator_in_process(kits, tmp_path) as api:
        r = api.post(
            "/api/v1/gateway/publish", json={"datasets": [dataset]}, headers=bearer(api, kits["site-a"])
        )
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("datasets.0.row_count:")


def test_a_poll_number_past_the_database_column_is_refused_not_a_server_error(tmp_path: Path) -> None:
    kits: dict[str, Kit] = provision_people(tmp_path / "kits", "openapi", PEOPLE)
    api: TestClient
    with orchestrator_in_process(kits, tmp_path) as api:
        heads = bearer(api, kits["site-a"])
        posted = api.post("/api/v1/gateway/tasks/next", json={"poll": 2**63, "wait": 0}, headers=heads)
        got = api.get("/api/v1/gateway/tasks/next", params={"poll": 2**63, "wait": 0}, headers=heads)
        newest = api.post("/api/v1/gateway/tasks/next", json={"poll": 2**63 - 1, "wait": 0}, headers=heads)
    assert (posted.status_code, got.status_code, newest.status_code) == (400, 400, 200), posted.text
    assert posted.json()["detail"].startswith("poll:")


def test_the_documented_archive_length_is_the_registry_cap() -> None:
    """The longest archive_b64 the document allows decodes to the largest archive the registry takes."""
    from custos.core.wire import MODEL_ARCHIVE_B64_CHARS
    from custos.registry.archive import ArchiveLimits

    assert 4 * (ArchiveLimits().max_archive_bytes // 3 + 1) == MODEL_ARCHIVE_B64_CHARS
