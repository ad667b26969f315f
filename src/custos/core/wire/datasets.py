"""Datasets as gateways publish them and users find them, and the signed asset policy relayed with each."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import ConfigDict, Field

from custos.core.schema import DatasetSchema
from custos.core.wire_base import WireModel


class SignedPolicy(WireModel):
    """An asset policy as an org admin of the dataset's org signed it (`custos policy sign`).

    The signature covers `policy_message(dataset, issued_at, policy_yaml)`. Whoever relays it (the
    orchestrator) cannot change a byte of it, nor pass an older one off as newer: gateways keep the
    newest `issued_at` they have accepted per dataset."""

    dataset: str = Field(max_length=200, description="gateway/dataset")
    policy_yaml: str = Field(max_length=256 * 1024)
    issued_at: datetime
    signer_certificate_pem: str = Field(max_length=16 * 1024)
    signature: str = Field(max_length=1024, description="base64 DER ECDSA-SHA256")


def policy_message(dataset: str, issued_at: datetime, policy_yaml: str) -> bytes:
    """The bytes a policy signature covers."""
    text_digest = hashlib.sha256(policy_yaml.encode("utf-8")).hexdigest()
    return f"custos-policy-v1\n{dataset}\n{issued_at.isoformat()}\n{text_digest}".encode()


class DatasetPublish(WireModel):
    """What a gateway tells the orchestrator about one dataset. Never the file's location."""

    name: str
    description: str = ""
    dataset_schema: DatasetSchema = Field(alias="schema")
    row_count: int = Field(ge=0, description="rounded to the nearest 10")
    mock_arrow_b64: str = Field(description="Arrow IPC stream of the mock table, base64")
    policy: SignedPolicy | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class GatewayPublish(WireModel):
    datasets: list[DatasetPublish] = Field(max_length=1000)


class DatasetInfo(WireModel):
    id: str
    gateway: str
    name: str
    description: str
    dataset_schema: DatasetSchema = Field(alias="schema")
    row_count: int
    policy_yaml: str | None
    policy_signer: str | None = None
    policy_issued_at: datetime | None = None
    owner_org: str = Field(default="", description="the publishing gateway's org, from its certificate")
    site_offline_since: datetime | None = Field(
        default=None, description="set while the dataset's gateway is offline: when it was last seen"
    )

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class MockTable(WireModel):
    dataset: str
    mock_arrow_b64: str
