"""Sign-in routes: challenge, token, and who am I."""

from __future__ import annotations

from fastapi import APIRouter

from custos.core.errors import AuthenticationFailed
from custos.core.wire import Challenge, ChallengeRequest, Me, TokenGrant, TokenRequest
from custos.orchestrator.api.context import CallerDep, ServicesDep

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/challenge")
def challenge(body: ChallengeRequest, services: ServicesDep) -> Challenge:
    return services.run(lambda s: services.auth.challenge(s, body))


@router.post("/auth/token")
def token(body: TokenRequest, services: ServicesDep) -> TokenGrant:
    try:
        nonce, fp = services.run(lambda s: services.auth.consume_challenge(s, body))
        grant = services.run(lambda s: services.auth.token(s, body, nonce, fp))
    except AuthenticationFailed as exc:
        services.audit.append(user="-", action="sign_in_refused", message=str(exc))
        raise
    services.audit.append(user=grant.name, action="sign_in", message=f"{grant.role} of {grant.org}")
    return grant


@router.get("/me")
def me(caller: CallerDep) -> Me:
    i = caller.identity
    return Me(name=i.name, org=i.org, role=i.role.value, fingerprint=caller.fingerprint)
