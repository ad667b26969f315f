"""API tokens for the SDK: create (shown once), list your own, revoke one of your own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from custos.core.errors import Conflict
from custos.core.wire import ApiToken, ApiTokenCreate, ApiTokenPublic
from custos.orchestrator.api.context import ServicesDep, UserDep
from custos.orchestrator.api.responses import refusals

router = APIRouter(prefix="/api/v1", tags=["tokens"])


@router.post("/tokens", status_code=201, responses=refusals(Conflict))
def create_token(body: ApiTokenCreate, caller: UserDep, services: ServicesDep) -> ApiToken:
    token = services.run(lambda s: services.auth.create_api_token(s, caller, body))
    services.audit.append(
        user=caller.identity.name,
        action="api_token_created",
        message=f"{token.id} {token.name!r}, expires {token.expires_at:%Y-%m-%d %H:%M:%S} UTC",
    )
    return token


@router.get("/tokens")
def list_tokens(caller: UserDep, services: ServicesDep) -> list[ApiTokenPublic]:
    return services.run(lambda s: services.auth.api_tokens.list_tokens(s, caller.identity.name))


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(
    token_id: Annotated[str, Path(max_length=64)], caller: UserDep, services: ServicesDep
) -> Response:
    revoked = services.run(lambda s: services.auth.api_tokens.revoke(s, caller.identity.name, token_id))
    services.audit.append(
        user=caller.identity.name, action="api_token_revoked", message=f"{revoked.id} {revoked.name!r}"
    )
    return Response(status_code=204)
