"""What crosses to and from a model owner's key broker (docs/confidential.md): the owner's signed
key deposits and policies, nonces, a gateway's attestation evidence and the data key wrapped for the
runtime's ephemeral public key."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field, field_validator

from custos.core.digest import canonical_json
from custos.core.wire.datasets import SignedPolicy
from custos.core.wire_base import WireModel

_HEX64 = r"^[0-9a-f]{64}$"
_B64 = r"^[A-Za-z0-9+/=_-]*$"
KEY_ID = r"^[A-Za-z0-9_-]{8,64}$"


class KeyPolicy(WireModel):
    """When the broker releases one data key: to a runtime measured as one of `measurements`, running
    the package whose ciphertext digest is `ciphertext_digest`, at a gateway named in `gateways` (or
    of an org in `orgs`; both empty: any gateway of the project), before `expires_at`."""

    package: str = Field(max_length=100, description="name@version")
    ciphertext_digest: str = Field(pattern=_HEX64)
    plaintext_digest: str = Field(pattern=_HEX64)
    measurements: list[str] = Field(min_length=1, max_length=16)
    gateways: list[str] = Field(default_factory=list, max_length=256)
    orgs: list[str] = Field(default_factory=list, max_length=256)
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is UTC, so that it compares with the broker's clock."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class OwnerRequest(WireModel):
    """An owner's signed instruction to their broker: deposit a key with its policy, set a policy,
    revoke. The signature (with the owner's kit key) covers `owner_message(self)`."""

    action: str = Field(pattern=r"^(deposit|policy|revoke)$")
    key_id: str = Field(pattern=KEY_ID)
    policy: KeyPolicy | None = None
    data_key_b64: str | None = Field(default=None, max_length=64, pattern=_B64)
    reason: str = Field(default="", max_length=500)
    issued_at: datetime
    signer_certificate_pem: str = Field(max_length=16 * 1024)
    signature: str = Field(default="", max_length=1024)


def owner_message(request: OwnerRequest) -> bytes:
    return b"custos-keybroker-owner-v1\n" + canonical_json(
        request.model_dump(mode="json", exclude={"signature"})
    )


class KeyPublic(WireModel):
    key_id: str
    policy: KeyPolicy
    owner: str
    revoked: str | None = None  # the reason, once revoked


class NonceIssued(WireModel):
    nonce: str
    expires_at: datetime


class EvidenceKind(StrEnum):
    SOFTWARE = "software"  # a gateway's kit signature over its measured runtime
    NITRO = "nitro"  # an AWS Nitro Enclaves attestation document


class SoftwareEvidence(WireModel):
    """What a gateway signs about the runtime that asks for a key (custos.attestation.software)."""

    measurement: str = Field(pattern=_HEX64, description="SHA-256 over the runtime's read-only tree")
    package_digest: str = Field(pattern=_HEX64, description="the ciphertext's SHA-256")
    key_id: str = Field(pattern=KEY_ID)
    dataset: str = Field(max_length=200, description="gateway/dataset it runs on")
    nonce: str = Field(max_length=64)
    public_key: str = Field(max_length=64, pattern=_B64, description="the runtime's X25519 key, base64")
    issued_at: datetime


def evidence_message(evidence: SoftwareEvidence) -> bytes:
    return b"custos-evidence-v1\n" + canonical_json(evidence.model_dump(mode="json"))


class KeyReleaseRequest(WireModel):
    """A gateway's request for a data key. `grant` is the custodian's signed policy for the dataset,
    which must grant the package; the broker checks it as the gateway does."""

    kind: EvidenceKind = EvidenceKind.SOFTWARE
    evidence: SoftwareEvidence
    gateway_certificate_pem: str = Field(max_length=16 * 1024)
    signature: str = Field(max_length=1024, pattern=_B64)
    nitro_document_b64: str | None = Field(default=None, max_length=32 * 1024)
    grant: SignedPolicy
    crl_pem: str | None = Field(default=None, max_length=1024 * 1024)


class WrappedKey(WireModel):
    """A data key, encrypted for the holder of the X25519 private key of the evidence's public key."""

    key_id: str
    ephemeral_public_key: str
    nonce: str
    ciphertext: str
