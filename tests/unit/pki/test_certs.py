"""Root CA, participant certificates, identities and PEM handling."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from custos.core.errors import AuthenticationFailed, InvalidInput
from custos.core.identity import Identity, Role
from custos.pki import (
    certificate_pem,
    create_root_ca,
    fingerprint,
    generate_key,
    identity_of,
    issue_certificate,
    load_certificate_pem,
    load_private_key_pem,
    private_key_pem,
    verify_certificate,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALICE = Identity(name="alice@uni.org", org="university", role=Role.LEAD_RESEARCHER)


def test_issued_certificate_carries_the_identity_and_verifies_under_its_ca() -> None:
    ca_cert, ca_key = create_root_ca("demo", now=NOW)
    key = generate_key()

    cert = issue_certificate(ca_cert, ca_key, ALICE, key.public_key(), now=NOW)

    assert identity_of(cert) == ALICE
    assert verify_certificate(cert, ca_cert, NOW + timedelta(days=1)) == ALICE
    assert cert.subject.get_attributes_for_oid(NameOID.UNSTRUCTURED_NAME)[0].value == "lead_researcher"
    assert cert.issuer == ca_cert.subject
    assert cert.not_valid_after_utc == NOW + timedelta(days=825)


def test_participant_certificate_is_a_tls_leaf_for_server_and_client() -> None:
    ca_cert, ca_key = create_root_ca("demo", now=NOW)
    identity = Identity(name="orchestrator", org="demo", role=Role.ORCHESTRATOR)

    cert = issue_certificate(
        ca_cert,
        ca_key,
        identity,
        generate_key().public_key(),
        dns_names=["custos.example.org", "localhost"],
        ip_addresses=["127.0.0.1", "::1"],
        now=NOW,
    )

    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["custos.example.org", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_root_ca_may_sign_certificates_and_is_no_participant() -> None:
    ca_cert, _ = create_root_ca("demo", valid_days=30, now=NOW)

    constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca_cert.subject.rfc4514_string() == "CN=demo"
    with pytest.raises(AuthenticationFailed, match=r"has no organization or role"):
        identity_of(ca_cert)


def test_certificate_never_outlives_its_ca() -> None:
    ca_cert, ca_key = create_root_ca("demo", valid_days=10, now=NOW)

    cert = issue_certificate(ca_cert, ca_key, ALICE, generate_key().public_key(), now=NOW)

    assert cert.not_valid_after_utc == ca_cert.not_valid_after_utc


def test_bad_ip_address_is_refused_naming_it() -> None:
    ca_cert, ca_key = create_root_ca("demo", now=NOW)
    with pytest.raises(InvalidInput, match=r"ip address '300.1.1.1' is not an IPv4 or IPv6 address"):
        issue_certificate(ca_cert, ca_key, ALICE, generate_key().public_key(), ip_addresses=["300.1.1.1"])


def test_zero_validity_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"valid_days 0"):
        create_root_ca("demo", valid_days=0)


def _certificate_with_subject(attributes: list[x509.NameAttribute[str]]) -> x509.Certificate:
    ca_cert, ca_key = create_root_ca("demo", now=NOW)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(generate_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )


def test_identity_of_refuses_an_unknown_role() -> None:
    cert = _certificate_with_subject(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "mallory"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "university"),
            x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, "superuser"),
        ]
    )
    with pytest.raises(AuthenticationFailed, match=r"certificate for mallory has unknown role 'superuser'"):
        identity_of(cert)


def test_identity_of_refuses_a_certificate_without_a_role() -> None:
    cert = _certificate_with_subject(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "mallory"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "university"),
        ]
    )
    with pytest.raises(AuthenticationFailed, match=r"has no role"):
        identity_of(cert)


def test_pem_round_trips_and_fingerprint_is_sha256_of_der() -> None:
    ca_cert, ca_key = create_root_ca("demo", now=NOW)
    key = generate_key()
    cert = issue_certificate(ca_cert, ca_key, ALICE, key.public_key(), now=NOW)

    assert load_certificate_pem(certificate_pem(cert)) == cert
    assert load_certificate_pem(certificate_pem(cert).encode()) == cert
    reloaded = load_private_key_pem(private_key_pem(key))
    assert key.curve.name == "secp256r1"
    assert reloaded.private_numbers() == key.private_numbers()
    assert private_key_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len(fingerprint(cert)) == 64
    assert fingerprint(cert) != fingerprint(ca_cert)
    assert fingerprint(cert) == fingerprint(load_certificate_pem(certificate_pem(cert)))


@pytest.mark.parametrize(
    "garbage", ["", "hello", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_garbage_certificate_is_refused_clearly(garbage: str) -> None:
    with pytest.raises(AuthenticationFailed, match=r"not a PEM-encoded X.509 certificate"):
        load_certificate_pem(garbage)


def test_private_key_that_is_not_ecdsa_or_not_pem_is_refused() -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidInput, match=r"Custos kits use ECDSA P-256 keys"):
        load_private_key_pem(rsa_pem)
    with pytest.raises(InvalidInput, match=r"not an unencrypted PEM-encoded key"):
        load_private_key_pem(b"not a key")
    encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(InvalidInput, match=r"not an unencrypted PEM-encoded key"):
        load_private_key_pem(encrypted)
