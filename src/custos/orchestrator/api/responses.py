"""The refusals of the API as its OpenAPI document states them (`/openapi.json`, docs/api.md).

Every refusal has one body, `ErrorPublic` (`{"detail": "..."}`), and a status from the error tree in
`custos.core.errors`. Most of what an operation can refuse follows from what the route is, so it is
stated here once for every route (`document_refusals`):

- any request: 400, a malformed request (the app answers 400 where FastAPI would answer 422, so
  FastAPI's 422 is taken out of the document) or a caller of another wire version;
- any route that reads the database: 503 while the database cannot be reached;
- a request with a body: 413 over the body cap (docs/threats.md, A2);
- a route the permission table does not make public: 401 without a sign-in, 403 when the caller's
  role, or the resource's owner or org, does not allow it;
- a route with path parameters: 404 when the resource it names does not exist, or is another org's
  (C23: ids cannot be probed).

What only a route's service knows (a reference in the body to something that does not exist, a
state that forbids the change, the sign-in limits) the route declares with
`responses=refusals(NotFound, Conflict)`.

The same rule that adds 401 names how to sign in: every operation that is not public lists the
security schemes (`SECURITY_SCHEMES`), a bearer token or the session cookie of a password sign-in, so
a generated client knows where to attach its token.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from custos.core.errors import (
    AuthenticationFailed,
    Conflict,
    ContentRefused,
    CustosError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Unavailable,
)
from custos.core.wire import ErrorPublic
from custos.orchestrator.services.sessions import CSRF_HEADER, SESSION_COOKIE
from custos.policy.permissions import PUBLIC, permission_table

# What each refusal means, for the document; a subclass before its base (`_why` takes the first match).
_WHY: dict[type[CustosError], str] = {
    ContentRefused: "The request is as described here, but what it carries does not verify (an archive "
    "that is not a readable zip, a digest or signature that does not match); `detail` says which check.",
    InvalidInput: "A malformed request or a bad value; `detail` names the field and what is accepted.",
    AuthenticationFailed: "No sign-in, or a proof of identity that did not verify.",
    PermissionDenied: "The caller is known but may not do this (role, org, owner, or policy).",
    NotFound: "The resource named does not exist, or the caller may not see it.",
    Conflict: "The resource is not in a state that allows this.",
    PayloadTooLarge: "The request body is larger than the orchestrator accepts.",
    RateLimited: "Too many failed sign-ins; try again after `Retry-After` seconds.",
    Unavailable: "The database cannot be reached; the same request may be sent again.",
}
# Routes that answer without the database.
_NO_DATABASE = frozenset({"/healthz"})
_ERROR_REF = {"$ref": f"#/components/schemas/{ErrorPublic.__name__}"}
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "a token from POST /api/v1/auth/token (a kit's certificate), or an API token "
        "(POST /api/v1/tokens)",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": f"the cookie of a password sign-in (POST /api/v1/auth/login); a request that "
        f"changes something must also carry the header {CSRF_HEADER}: 1",
    },
}


def _why(error: type[CustosError]) -> str:
    return next(text for kind, text in _WHY.items() if issubclass(error, kind))


def refusals(*errors: type[CustosError]) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` for the refusals a route's service raises, each with the error body."""
    answers: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        answers[error.status] = {"model": ErrorPublic, "description": _why(error)}
        if issubclass(error, RateLimited):
            answers[error.status]["headers"] = {
                "Retry-After": {
                    "description": "seconds until the next attempt",
                    "schema": {"type": "integer"},
                }
            }
    return answers


def implied_refusals(method: str, path: str, operation: dict[str, Any]) -> list[type[CustosError]]:
    """The refusals that follow from what an operation of the document is (see the module's
    docstring): its path, whether it takes a body, and whether the permission table makes it public."""
    implied: list[type[CustosError]] = [InvalidInput]
    if path not in _NO_DATABASE:
        implied.append(Unavailable)
    if "requestBody" in operation:
        implied.append(PayloadTooLarge)
    if not _is_public(method, path):
        implied += [AuthenticationFailed, PermissionDenied]
    if any(parameter.get("in") == "path" for parameter in operation.get("parameters", ())):
        implied.append(NotFound)
    return implied


def _is_public(method: str, path: str) -> bool:
    return permission_table().operation_for(method.upper(), path) == PUBLIC


def _add_refusals(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    schemas = components.setdefault("schemas", {})
    schemas.setdefault(
        ErrorPublic.__name__, ErrorPublic.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            if "HTTPValidationError" in str(answers.get("422")):
                del answers["422"]  # FastAPI's validation error: the app answers 400 instead
            for error in implied_refusals(method, path, operation):
                answers.setdefault(
                    str(error.status),
                    {"description": _why(error), "content": {"application/json": {"schema": _ERROR_REF}}},
                )
            operation["responses"] = dict(sorted(answers.items()))
            if not _is_public(method, path):
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]


def document_refusals(app: FastAPI) -> None:
    """Make `app.openapi()` state every route's refusals, with the one error body."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _add_refusals(build())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
