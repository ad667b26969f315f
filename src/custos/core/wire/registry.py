"""The model registry: built-in models and signed packages a publisher uploaded, as listed and fetched."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from custos.core.digest import json_digest
from custos.core.refs import NameText, VersionText
from custos.core.wire_base import BASE64_PATTERN, WireModel

# The base64 of the 8 MiB a model archive may have (registry/archive.py), to the character, so the API's
# description refuses exactly the lengths the registry does.
MODEL_ARCHIVE_B64_CHARS = 4 * -(-(8 << 20) // 3)


class ModelKind(StrEnum):
    BUILTIN = "builtin"  # shipped with Custos (custos.computations)
    PACKAGE = "package"  # a signed archive a publisher uploaded (`custos model publish`)
    CONFIDENTIAL = "confidential"  # an encrypted archive (`custos model publish --confidential`)


def model_message(name: str, version: str, digest: str) -> bytes:
    """The bytes a model package signature covers: the archive's SHA-256 bound to name and version."""
    return f"custos-model-v1\n{name}\n{version}\n{digest}".encode()


_HEX64 = r"^[0-9a-f]{64}$"


class ConfidentialTerms(WireModel):
    """What the owner of a confidential package signs besides its ciphertext: the digest of the
    plaintext archive, the id of the data key at the owner's key broker, the broker's URL, the runtime
    measurements it may run under, and the package's manifest (which the custodian's policy checks).
    None of it is secret: the code is in the ciphertext only."""

    plaintext_digest: str = Field(pattern=_HEX64, description="SHA-256 of the plaintext archive, hex")
    key_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    broker_url: str = Field(pattern=r"^https://[^\s/]+(:[0-9]+)?/?$", max_length=256)
    measurements: list[str] = Field(min_length=1, max_length=16)
    manifest: dict[str, Any]

    def digest(self) -> str:
        return json_digest(self.model_dump(mode="json"))


def confidential_message(name: str, version: str, digest: str, terms: ConfidentialTerms) -> bytes:
    """The bytes a confidential package's signature covers: the ciphertext's SHA-256 and the terms,
    bound to name and version."""
    return f"custos-confidential-v1\n{name}\n{version}\n{digest}\n{terms.digest()}".encode()


class ModelSignature(WireModel):
    """A publisher's signature over `model_message(name, version, digest)`, made with their kit key."""

    name: NameText = Field(max_length=64)
    version: VersionText = Field(max_length=32)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the archive, hex")
    signer_certificate_pem: str = Field(max_length=16 * 1024)
    signature: str = Field(max_length=1024, description="base64 DER ECDSA-SHA256")


class ModelPublish(ModelSignature):
    archive_b64: str = Field(
        max_length=MODEL_ARCHIVE_B64_CHARS, json_schema_extra={"pattern": BASE64_PATTERN}
    )
    confidential: ConfidentialTerms | None = None  # then archive_b64 is the ciphertext


class ModelArchive(ModelSignature):
    """A published archive as gateways and users fetch it; they verify it before anything else."""

    signer: str
    published_at: datetime
    archive_b64: str = Field(max_length=MODEL_ARCHIVE_B64_CHARS)
    confidential: ConfidentialTerms | None = None


class ModelPublic(WireModel):
    name: str
    version: str
    kind: ModelKind
    description: str
    digest: str | None = None
    size: int | None = None
    signer: str | None = None
    signer_org: str | None = None
    published_at: datetime | None = None


class ModelDetail(ModelPublic):
    """One registry entry; for a package, its manifest (entrypoint, parameters, columns, outputs)."""

    manifest: dict[str, Any] | None = None
    confidential: ConfidentialTerms | None = None
