"""Verification against a project's root CA, and ECDSA signatures made with participant keys.

Custos projects have a one-level hierarchy: the root CA signs every participant certificate directly,
so a certificate is trusted exactly when the root's signature on it verifies, it is within its validity,
and it is not on the root's revocation list (when the caller holds one).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from custos.core.errors import AuthenticationFailed
from custos.core.identity import Identity
from custos.pki.certs import identity_of, subject_name

if TYPE_CHECKING:
    from custos.pki.revocation import RevocationList

_SIGNATURE = ec.ECDSA(hashes.SHA256())


def check_issued_by(cert: x509.Certificate, root: x509.Certificate) -> None:
    """Raise unless `root` issued `cert` and its signature on it verifies. Time is not checked."""
    who = subject_name(cert)
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise AuthenticationFailed(f"certificate for {who} is not signed by this project's CA") from exc
    if _is_ca(cert):
        raise AuthenticationFailed(
            f"certificate for {who} is a CA certificate; a participant must present its own certificate"
        )


def verify_certificate(
    cert: x509.Certificate,
    root: x509.Certificate,
    now: datetime,
    revocations: RevocationList | None = None,
) -> Identity:
    """The identity of a certificate the project's root CA signed and that is valid at `now`.

    `revocations` is the project's revocation list as `load_crl` verified it against the same root;
    a certificate on it is refused whatever its validity."""
    check_issued_by(cert, root)
    if revocations is not None:
        revoked_on = revocations.revoked_on(cert.serial_number)
        if revoked_on is not None:
            raise AuthenticationFailed(
                f"certificate for {subject_name(cert)} was revoked on {_date(revoked_on)}"
            )
    when = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    for label, checked in (("certificate for " + subject_name(cert), cert), ("this project's CA", root)):
        if when < checked.not_valid_before_utc:
            raise AuthenticationFailed(f"{label} is not valid before {_date(checked.not_valid_before_utc)}")
        if when > checked.not_valid_after_utc:
            raise AuthenticationFailed(f"{label} expired on {_date(checked.not_valid_after_utc)}")
    return identity_of(cert)


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """A DER-encoded ECDSA-SHA256 signature of `data`."""
    return key.sign(data, _SIGNATURE)


def verify_signature(cert: x509.Certificate, data: bytes, signature: bytes) -> None:
    """Raise AuthenticationFailed unless `signature` over `data` was made with `cert`'s key."""
    public_key = cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise AuthenticationFailed(f"certificate for {subject_name(cert)} does not hold an ECDSA key")
    try:
        public_key.verify(signature, data, _SIGNATURE)
    except InvalidSignature as exc:
        raise AuthenticationFailed(
            f"signature does not match the certificate for {subject_name(cert)}; "
            "sign with the key.pem of the same startup kit"
        ) from exc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
