"""Verification against the project's root CA, and signatures made with participant keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from custos.core.errors import AuthenticationFailed
from custos.core.identity import Identity, Role
from custos.pki import (
    create_root_ca,
    generate_key,
    issue_certificate,
    sign,
    verify_certificate,
    verify_signature,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SITE_A = Identity(name="site-a", org="hospital-a", role=Role.GATEWAY)


def _issued(
    valid_days: int = 30,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = create_root_ca("demo", now=NOW)
    key = generate_key()
    cert = issue_certificate(ca_cert, ca_key, SITE_A, key.public_key(), valid_days=valid_days, now=NOW)
    return ca_cert, ca_key, cert, key


def test_valid_certificate_yields_its_identity() -> None:
    ca_cert, _, cert, _ = _issued()

    assert verify_certificate(cert, ca_cert, NOW + timedelta(days=29)) == SITE_A


def test_expired_certificate_is_refused_saying_when_it_expired() -> None:
    ca_cert, _, cert, _ = _issued(valid_days=30)

    with pytest.raises(
        AuthenticationFailed, match=r"certificate for site-a expired on 2026-03-31 12:00:00 UTC"
    ):
        verify_certificate(cert, ca_cert, NOW + timedelta(days=30, seconds=1))


def test_not_yet_valid_certificate_is_refused_saying_from_when() -> None:
    ca_cert, _, cert, _ = _issued()

    # Certificates start five minutes early to absorb clock skew between machines.
    assert verify_certificate(cert, ca_cert, NOW - timedelta(minutes=4)) == SITE_A
    with pytest.raises(
        AuthenticationFailed, match=r"certificate for site-a is not valid before 2026-03-01 11:55:00 UTC"
    ):
        verify_certificate(cert, ca_cert, NOW - timedelta(days=1))


def test_naive_time_is_taken_as_utc() -> None:
    ca_cert, _, cert, _ = _issued(valid_days=30)

    with pytest.raises(AuthenticationFailed, match=r"expired"):
        verify_certificate(cert, ca_cert, datetime(2026, 4, 1, 0, 0))


def test_expired_root_refuses_every_certificate() -> None:
    ca_cert, ca_key = create_root_ca("demo", valid_days=10, now=NOW)
    key = generate_key()
    cert = issue_certificate(ca_cert, ca_key, SITE_A, key.public_key(), now=NOW)

    with pytest.raises(AuthenticationFailed, match=r"expired"):
        verify_certificate(cert, ca_cert, NOW + timedelta(days=11))


def test_certificate_from_another_ca_is_refused_even_with_the_same_names() -> None:
    ca_cert, _, _, _ = _issued()
    # Another CA with the very same project name: only the signature tells them apart.
    other_ca, other_key = create_root_ca("demo", now=NOW)
    forged = issue_certificate(other_ca, other_key, SITE_A, generate_key().public_key(), now=NOW)

    with pytest.raises(
        AuthenticationFailed, match=r"certificate for site-a is not signed by this project's CA"
    ):
        verify_certificate(forged, ca_cert, NOW)


def test_certificate_from_a_differently_named_ca_is_refused() -> None:
    ca_cert, _, _, _ = _issued()
    other_ca, other_key = create_root_ca("other", now=NOW)
    forged = issue_certificate(other_ca, other_key, SITE_A, generate_key().public_key(), now=NOW)

    with pytest.raises(AuthenticationFailed, match=r"not signed by this project's CA"):
        verify_certificate(forged, ca_cert, NOW)


def test_the_root_itself_is_not_accepted_as_a_participant() -> None:
    ca_cert, _, _, _ = _issued()

    with pytest.raises(AuthenticationFailed, match=r"is a CA certificate"):
        verify_certificate(ca_cert, ca_cert, NOW)


def test_signature_round_trip() -> None:
    _, _, cert, key = _issued()

    verify_signature(cert, b"nonce", sign(key, b"nonce"))


def test_signature_by_the_wrong_key_is_refused() -> None:
    _, _, cert, _ = _issued()
    wrong = generate_key()

    with pytest.raises(AuthenticationFailed, match=r"signature does not match the certificate for site-a"):
        verify_signature(cert, b"nonce", sign(wrong, b"nonce"))


def test_signature_over_other_data_or_garbage_is_refused() -> None:
    _, _, cert, key = _issued()

    with pytest.raises(AuthenticationFailed):
        verify_signature(cert, b"nonce-2", sign(key, b"nonce"))
    with pytest.raises(AuthenticationFailed):
        verify_signature(cert, b"nonce", b"\x00" * 64)
