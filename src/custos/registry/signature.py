"""Signatures over model archives: the publisher signs (name, version, digest) with their kit key.

A signature is accepted only when the signer's certificate passes the caller's certificate check
(chains to the project's root CA, valid now, not revoked), the signer's role may publish models, and
the ECDSA signature verifies over `model_message(name, version, digest)`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from custos.core.errors import AuthenticationFailed
from custos.core.identity import Identity, Role
from custos.core.wire import ModelSignature, model_message
from custos.pki.certs import certificate_pem, identity_of, load_certificate_pem
from custos.pki.verify import sign, verify_signature
from custos.registry.archive import BuiltArchive
from custos.registry.refusals import PackageRefused, Refusal

CertificateCheck = Callable[[x509.Certificate], Identity]

# The roles `model.publish` allows in permissions.yaml; a test keeps the two equal. Gateways check
# it again, so an orchestrator cannot pass off a package signed by someone who may not publish.
PUBLISHER_ROLES = frozenset({Role.PROJECT_ADMIN, Role.ORG_ADMIN, Role.LEAD_RESEARCHER})


def sign_archive(
    built: BuiltArchive, *, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
) -> ModelSignature:
    """Sign `built` as its manifest's name@version. Refuses a signer whose role may not publish."""
    signer = identity_of(certificate)
    if signer.role not in PUBLISHER_ROLES:
        raise PackageRefused(
            Refusal.SIGNER_ROLE,
            f"{signer.name} is a {signer.role.value}; only {_roles()} may publish models",
        )
    name, version = built.manifest.name, built.manifest.version
    return sign_message(
        name, version, built.digest, model_message(name, version, built.digest), key, certificate
    )


def sign_message(
    name: str,
    version: str,
    digest: str,
    message: bytes,
    key: ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
) -> ModelSignature:
    """A ModelSignature of `digest` as name@version whose signature covers `message`."""
    signature = sign(key, message)
    return ModelSignature(
        name=name,
        version=version,
        digest=digest,
        signer_certificate_pem=certificate_pem(certificate),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def check_signature(
    signed: ModelSignature, check_certificate: CertificateCheck, message: bytes | None = None
) -> Identity:
    """The signer of `signed`, once the checks in the module docstring pass; else PackageRefused.
    `message` is what the signature must cover, by default `model_message(name, version, digest)`."""
    what = f"{signed.name}@{signed.version}"
    try:
        cert = load_certificate_pem(signed.signer_certificate_pem)
        signer = check_certificate(cert)
    except AuthenticationFailed as exc:
        raise PackageRefused(Refusal.UNTRUSTED_SIGNER, f"{what}: its signer's {exc.message}") from exc
    if signer.role not in PUBLISHER_ROLES:
        raise PackageRefused(
            Refusal.SIGNER_ROLE,
            f"{what} is signed by {signer.name}, a {signer.role.value}; only {_roles()} may publish models",
        )
    try:
        raw = base64.b64decode(signed.signature, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise PackageRefused(Refusal.BAD_SIGNATURE, f"{what}: the signature is not base64") from exc
    try:
        covered = message or model_message(signed.name, signed.version, signed.digest)
        verify_signature(cert, covered, raw)
    except AuthenticationFailed as exc:
        raise PackageRefused(
            Refusal.BAD_SIGNATURE,
            f"{what}: the signature does not cover this name, version and digest; it was not made "
            f"by {signer.name} for this archive",
        ) from exc
    return signer


def _roles() -> str:
    return ", ".join(sorted(r.value for r in PUBLISHER_ROLES))
