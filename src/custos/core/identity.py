"""Who a participant is: name, org and role, as carried by its certificate."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ORCHESTRATOR = "orchestrator"
    GATEWAY = "gateway"
    PROJECT_ADMIN = "project_admin"
    ORG_ADMIN = "org_admin"
    LEAD_RESEARCHER = "lead_researcher"
    MEMBER_RESEARCHER = "member_researcher"
    KEY_BROKER = "key_broker"  # a model owner's key broker (custos keybroker start)


class ParticipantKind(StrEnum):
    ORCHESTRATOR = "orchestrator"
    GATEWAY = "gateway"
    USER = "user"
    KEYBROKER = "keybroker"


USER_ROLES = frozenset({Role.PROJECT_ADMIN, Role.ORG_ADMIN, Role.LEAD_RESEARCHER, Role.MEMBER_RESEARCHER})


def kind_of(role: Role) -> ParticipantKind:
    if role is Role.ORCHESTRATOR:
        return ParticipantKind.ORCHESTRATOR
    if role is Role.GATEWAY:
        return ParticipantKind.GATEWAY
    if role is Role.KEY_BROKER:
        return ParticipantKind.KEYBROKER
    return ParticipantKind.USER


@dataclass(frozen=True)
class Identity:
    """A verified participant. Built only from a verified certificate or a server-side session."""

    name: str
    org: str
    role: Role

    @property
    def kind(self) -> ParticipantKind:
        return kind_of(self.role)
