"""Routes for administrators: users, the audit trail, and the certificate revocation list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from custos.core.errors import InvalidInput
from custos.core.wire import AuditAnchorPublic, AuditEventPublic, UserPublic, WireModel
from custos.orchestrator.api.context import ServicesDep, UserDep

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get("/users")
def list_users(caller: UserDep, services: ServicesDep) -> list[UserPublic]:
    return services.run(lambda s: services.people.users(s, caller.identity))


@router.get("/audit")
def audit_events(
    caller: UserDep,
    services: ServicesDep,
    job: Annotated[str | None, Query(max_length=64)] = None,
    user: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AuditEventPublic]:
    """Events matching every filter given, newest `limit`, oldest first."""
    return services.run(
        lambda s: services.people.audit(s, caller.identity, job=job, user=user, since=since, limit=limit)
    )


@router.get("/audit/anchors/{trail}")
def audit_anchors(trail: str, caller: UserDep, services: ServicesDep) -> list[AuditAnchorPublic]:
    """Every head kept of a trail, oldest first: a gateway's (its name), or the orchestrator's own
    (`orchestrator`, anchored now first). `custos audit verify --anchored` checks a file against them."""
    return services.run(lambda s: services.anchors.list(s, caller.identity, trail))


class CrlBody(WireModel):
    crl_pem: str | None = Field(max_length=4 * 1024 * 1024)
    number: int | None = None


@router.put("/crl")
def put_crl(body: CrlBody, caller: UserDep, services: ServicesDep) -> CrlBody:
    """Put a newer revocation list (from `custos provision revoke`) in force. Signed-in callers whose
    certificates it names are signed out."""
    if body.crl_pem is None:
        raise InvalidInput("crl_pem is required: the PEM text of the project's revocation list")
    pem = body.crl_pem
    crl = services.run(lambda s: services.trust.publish_crl(s, pem))
    services.audit.append(
        user=caller.identity.name,
        action="crl_published",
        message=f"revocation list {crl.number} names {len(crl.revoked)} certificate(s)",
    )
    return CrlBody(crl_pem=crl.pem, number=crl.number)


@router.get("/crl")
def get_crl(services: ServicesDep) -> CrlBody:
    """The revocation list in force, for gateways (it is signed by the root CA, so it is public)."""
    pem = services.run(services.trust.crl_pem)
    return CrlBody(crl_pem=pem, number=None)
