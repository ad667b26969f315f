"""X.509 certificates and keys of a project: the root CA, participant certificates, PEM in and out.

A participant certificate carries who its holder is: the subject's common name is the participant's
name, the organization is its org, and its role is in the unstructuredName attribute (as NVIDIA FLARE
does). Keys are ECDSA on P-256.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from custos.core.clock import utcnow
from custos.core.errors import AuthenticationFailed, InvalidInput
from custos.core.identity import Identity, Role

# Certificates start a little in the past so a peer whose clock runs slightly behind accepts them.
CLOCK_SKEW = timedelta(minutes=5)


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def create_root_ca(
    project: str, *, valid_days: int = 3650, now: datetime | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed root CA for `project`; it may sign participant certificates and nothing else."""
    if valid_days < 1:
        raise InvalidInput(f"valid_days {valid_days} is not accepted; use a whole number of days >= 1")
    now = now or utcnow()
    key = generate_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, project)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    identity: Identity,
    public_key: ec.EllipticCurvePublicKey,
    *,
    valid_days: int = 825,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    now: datetime | None = None,
) -> x509.Certificate:
    """A certificate for `identity`, signed by the CA, usable for TLS servers and clients alike."""
    if valid_days < 1:
        raise InvalidInput(f"valid_days {valid_days} is not accepted; use a whole number of days >= 1")
    now = now or utcnow()
    # A certificate never outlives the CA that vouches for it.
    not_after = min(now + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, identity.name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.org),
            x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, identity.role.value),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    alt_names = _alt_names(dns_names, ip_addresses)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _alt_names(dns_names: Sequence[str], ip_addresses: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dict.fromkeys(dns_names)]
    for text in dict.fromkeys(ip_addresses):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(text)))
        except ValueError as exc:
            raise InvalidInput(
                f"ip address {text!r} is not an IPv4 or IPv6 address; write e.g. 10.0.0.5"
            ) from exc
    return names


def _attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode()


def subject_name(cert: x509.Certificate) -> str:
    """The holder's name for messages: its common name, else the whole subject."""
    return _attribute(cert, NameOID.COMMON_NAME) or cert.subject.rfc4514_string() or "(empty subject)"


def identity_of(cert: x509.Certificate) -> Identity:
    """Name, org and role as the certificate states them. Does not check who signed it."""
    name = _attribute(cert, NameOID.COMMON_NAME)
    org = _attribute(cert, NameOID.ORGANIZATION_NAME)
    role = _attribute(cert, NameOID.UNSTRUCTURED_NAME)
    missing = [
        label for label, value in (("common name", name), ("organization", org), ("role", role)) if not value
    ]
    if missing or name is None or org is None or role is None:
        raise AuthenticationFailed(
            f"certificate {cert.subject.rfc4514_string()!r} has no {' or '.join(missing)}; "
            "use a certificate from a Custos startup kit"
        )
    try:
        parsed = Role(role)
    except ValueError as exc:
        accepted = ", ".join(r.value for r in Role)
        raise AuthenticationFailed(
            f"certificate for {name} has unknown role {role!r}; accepted roles are {accepted}"
        ) from exc
    return Identity(name=name, org=org, role=parsed)


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_certificate_pem(pem: str | bytes) -> x509.Certificate:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise AuthenticationFailed(
            "certificate is not a PEM-encoded X.509 certificate "
            "(expected text starting with '-----BEGIN CERTIFICATE-----')"
        ) from exc


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key_pem(data: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(
            "private key is not an unencrypted PEM-encoded key "
            "(expected text starting with '-----BEGIN PRIVATE KEY-----')"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(f"private key is a {type(key).__name__}; Custos kits use ECDSA P-256 keys")
    return key
