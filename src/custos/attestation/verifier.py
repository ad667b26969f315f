"""The one interface every kind of attestation evidence is checked through (software, AWS Nitro),
and why evidence is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from custos.core.errors import PolicyDenied
from custos.core.identity import Identity
from custos.core.wire.keybroker import KeyReleaseRequest


class Refused(StrEnum):
    BAD_EVIDENCE = "bad_evidence"  # malformed, or its signature does not verify
    UNTRUSTED_GATEWAY = "untrusted_gateway"  # not this project's, expired, revoked, not a gateway
    STALE = "stale"  # issued too long ago, or in the future
    NONCE = "nonce"  # a nonce the broker did not issue, or already used
    MEASUREMENT = "measurement"  # a runtime the key's policy does not name
    DEBUG_ENCLAVE = "debug_enclave"  # an enclave in debug mode (all-zero PCRs)
    UNTRUSTED_ROOT = "untrusted_root"  # a document's chain does not end at the pinned root
    WRONG_PACKAGE = "wrong_package"  # evidence for another package or key
    GATEWAY_NOT_ALLOWED = "gateway_not_allowed"  # the key's policy does not name this gateway or org
    GRANT = "grant"  # no custodian grant of this package on this dataset
    EXPIRED = "expired"  # the key's policy has expired
    REVOKED = "revoked"  # the owner revoked the key
    UNKNOWN_KEY = "unknown_key"


class ReleaseRefused(PolicyDenied):
    """Evidence or a request that gets no key; `reason` is audited on both sides."""

    def __init__(self, reason: Refused, message: str) -> None:
        super().__init__(f"key release refused ({reason.value}): {message}")
        self.reason = reason


@dataclass(frozen=True)
class Attested:
    """What verified evidence shows: which gateway, which runtime, for which package and key, and
    the runtime's public key to wrap the data key for."""

    gateway: Identity
    measurement: str
    package_digest: str
    key_id: str
    dataset: str
    nonce: str
    public_key: X25519PublicKey
    issued_at: datetime


class AttestationVerifier(Protocol):
    """Checks one kind of evidence. MUST refuse (ReleaseRefused) unless the evidence is authentic
    (signature or document chain to the pinned root) and fresh (within `max_age_s` of `now`); it does
    not judge the key's policy or the nonce's single use: the broker does."""

    def verify(self, request: KeyReleaseRequest, now: datetime) -> Attested: ...
