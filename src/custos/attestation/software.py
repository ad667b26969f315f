"""Software attestation: the gateway measures the sandbox's read-only runtime and signs, with its kit
key, evidence naming that measurement, the package, the broker's nonce and the runtime's ephemeral
public key.

What it proves: a gateway holding a valid, unrevoked certificate of this project vouches that the
runtime it starts is made of these exact files (interpreter, Custos runtime modules and bootstrap,
seccomp profile), and that this key pair was made inside it. What it does not: there is no hardware
isolation. The host's root user can read the sandbox's memory, and a gateway operator who changes
the gateway's own code can sign anything. Against those, run the runtime in an enclave and use
`custos.attestation.nitro` evidence.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from custos.attestation.verifier import Attested, Refused, ReleaseRefused
from custos.attestation.wrap import load_public_key
from custos.core.errors import AuthenticationFailed, CustosError
from custos.core.identity import Identity, Role
from custos.core.wire.keybroker import KeyReleaseRequest, SoftwareEvidence, evidence_message
from custos.pki.certs import certificate_pem, load_certificate_pem
from custos.pki.kit import Kit
from custos.pki.verify import sign, verify_signature
from custos.sandbox.interpreter import OWN_PACKAGE
from custos.sandbox.seccomp import seccomp_program

MAX_AGE_S = 120.0


def measure_runtime(interpreter: str | None = None, package: Path = OWN_PACKAGE) -> str:
    """SHA-256 over the runtime a sandbox starts: the interpreter's binary, every Python file of the
    custos package (its path and content) and the seccomp program, in a fixed order."""
    digest = hashlib.sha256(b"custos-runtime-v1\n")
    binary = Path(os.path.realpath(interpreter or sys.executable))
    digest.update(b"interpreter\0" + hashlib.sha256(binary.read_bytes()).digest())
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        digest.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    digest.update(b"seccomp\0" + hashlib.sha256(seccomp_program()).digest())
    return digest.hexdigest()


def sign_evidence(kit: Kit, evidence: SoftwareEvidence) -> tuple[str, str]:
    """The gateway's certificate (PEM) and its signature over `evidence`."""
    signature = sign(kit.private_key, evidence_message(evidence))
    return certificate_pem(kit.certificate), base64.b64encode(signature).decode("ascii")


class SoftwareVerifier:
    """Checks a gateway's signed evidence: a certificate `check_certificate` accepts (project root,
    validity, revocation) of role gateway, its signature over the evidence, and its age."""

    def __init__(
        self, check_certificate: Callable[[x509.Certificate], Identity], max_age_s: float = MAX_AGE_S
    ):
        self._check = check_certificate
        self._max_age = timedelta(seconds=max_age_s)

    def verify(self, request: KeyReleaseRequest, now: datetime) -> Attested:
        evidence = request.evidence
        try:
            cert = load_certificate_pem(request.gateway_certificate_pem)
            gateway = self._check(cert)
        except (AuthenticationFailed, CustosError) as exc:
            raise ReleaseRefused(Refused.UNTRUSTED_GATEWAY, f"the gateway's {exc.message}") from exc
        if gateway.role is not Role.GATEWAY:
            raise ReleaseRefused(Refused.UNTRUSTED_GATEWAY, f"{gateway.name} is not a gateway")
        try:
            verify_signature(
                cert, evidence_message(evidence), base64.b64decode(request.signature, validate=True)
            )
        except (AuthenticationFailed, ValueError) as exc:
            raise ReleaseRefused(
                Refused.BAD_EVIDENCE, f"the evidence is not signed by {gateway.name}"
            ) from exc
        age = now - evidence.issued_at
        if age > self._max_age or age < -timedelta(seconds=30):
            raise ReleaseRefused(Refused.STALE, f"the evidence was issued {age.total_seconds():.0f} s ago")
        if not evidence.dataset.startswith(f"{gateway.name}/"):
            raise ReleaseRefused(Refused.BAD_EVIDENCE, f"{gateway.name} vouches for another site's dataset")
        try:
            public_key = load_public_key(evidence.public_key)
        except CustosError as exc:
            raise ReleaseRefused(Refused.BAD_EVIDENCE, exc.message) from exc
        return Attested(
            gateway=gateway, measurement=evidence.measurement, package_digest=evidence.package_digest,
            key_id=evidence.key_id, dataset=evidence.dataset, nonce=evidence.nonce, public_key=public_key,
            issued_at=evidence.issued_at,
        )  # fmt: skip
