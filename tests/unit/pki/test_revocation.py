"""The revocation list: a real X.509 CRL signed by the root CA, grown one revocation at a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from custos.core.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from custos.core.identity import Identity, Role
from custos.pki import (
    build_crl,
    create_root_ca,
    generate_key,
    issue_certificate,
    load_certificate_pem,
    load_crl,
    load_kit,
    load_private_key_pem,
    revoke_participant,
    verify_certificate,
)
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.revocation import crl_pem

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SITE_A = Identity(name="site-a", org="hospital-a", role=Role.GATEWAY)


@pytest.fixture
def kits(tmp_path: Path, project_spec: ProjectSpec) -> Path:
    """The project, provisioned the day before NOW, so revocations at NOW fall within validity."""
    out = tmp_path / "kits"
    provision(project_spec, out, now=NOW - timedelta(days=1))
    return out


def root_of(kits: Path) -> x509.Certificate:
    return load_certificate_pem((kits / "ca" / "rootCA.pem").read_bytes())


def test_build_and_load_round_trip() -> None:
    ca_cert, ca_key = create_root_ca("demo", now=NOW)

    crl = build_crl(ca_cert, ca_key, [(7, NOW), (11, NOW + timedelta(hours=1))], 3, NOW + timedelta(hours=2))
    loaded = load_crl(crl_pem(crl), ca_cert)

    assert loaded.number == 3
    assert loaded.revoked == frozenset({7, 11})
    assert loaded.revoked_on(11) == NOW + timedelta(hours=1)
    assert loaded.revoked_on(12) is None
    assert loaded.entries() == [(7, NOW), (11, NOW + timedelta(hours=1))]
    assert loaded.pem.startswith("-----BEGIN X509 CRL-----")
    assert load_crl(loaded.pem.encode(), ca_cert) == loaded
    assert crl.issuer == ca_cert.subject
    assert crl.last_update_utc == NOW + timedelta(hours=2)


def test_an_empty_list_is_a_valid_list() -> None:
    ca_cert, ca_key = create_root_ca("demo", now=NOW)

    loaded = load_crl(crl_pem(build_crl(ca_cert, ca_key, [], 1, NOW)), ca_cert)

    assert (loaded.number, loaded.revoked) == (1, frozenset())


def test_crl_number_must_be_positive() -> None:
    ca_cert, ca_key = create_root_ca("demo", now=NOW)

    with pytest.raises(InvalidInput, match=r"CRL number 0 is not accepted"):
        build_crl(ca_cert, ca_key, [], 0, NOW)


def test_garbage_is_not_a_crl() -> None:
    ca_cert, _ = create_root_ca("demo", now=NOW)

    with pytest.raises(AuthenticationFailed, match=r"not a PEM-encoded X.509 CRL"):
        load_crl("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", ca_cert)


def test_verify_certificate_refuses_a_revoked_certificate_and_accepts_the_others() -> None:
    ca_cert, ca_key = create_root_ca("demo", now=NOW)
    revoked = issue_certificate(ca_cert, ca_key, SITE_A, generate_key().public_key(), now=NOW)
    kept = issue_certificate(ca_cert, ca_key, SITE_A, generate_key().public_key(), now=NOW)
    crl = load_crl(crl_pem(build_crl(ca_cert, ca_key, [(revoked.serial_number, NOW)], 1, NOW)), ca_cert)

    assert verify_certificate(kept, ca_cert, NOW, crl) == SITE_A
    assert verify_certificate(revoked, ca_cert, NOW) == SITE_A  # callers without a list keep working
    with pytest.raises(
        AuthenticationFailed, match=r"^certificate for site-a was revoked on 2026-03-01 12:00:00 UTC$"
    ):
        verify_certificate(revoked, ca_cert, NOW, crl)


def test_revoke_writes_a_crl_signed_by_the_project_root(kits: Path) -> None:
    site_a = load_kit(kits / "site-a")

    done = revoke_participant(kits, "site-a", reason="laptop stolen", now=NOW)

    assert done.path == kits / "ca" / "revoked.crl.pem"
    crl = load_crl(done.path.read_bytes(), root_of(kits))
    assert crl.number == 1
    assert crl.revoked == frozenset({site_a.certificate.serial_number})
    assert crl.revoked_on(site_a.certificate.serial_number) == NOW
    assert done.crl == crl
    with pytest.raises(AuthenticationFailed, match=r"certificate for site-a was revoked on 2026-03-01"):
        verify_certificate(site_a.certificate, root_of(kits), NOW + timedelta(minutes=1), crl)


def test_revoke_records_when_and_why_in_the_ledger(kits: Path) -> None:
    revoke_participant(kits, "site-a", reason="laptop stolen", now=NOW)

    ledger = json.loads((kits / "ca" / "issued.json").read_text())
    record = next(c for c in ledger["certificates"] if c["name"] == "site-a")
    others = [c for c in ledger["certificates"] if c["name"] != "site-a"]
    assert (record["revoked_at"], record["revocation_reason"]) == ("2026-03-01T12:00:00Z", "laptop stolen")
    assert all(c["revoked_at"] is None for c in others)


def test_each_revocation_raises_the_crl_number_and_keeps_earlier_entries(kits: Path) -> None:
    gateway = load_kit(kits / "site-a").certificate.serial_number
    user = load_kit(kits / "alice@uni.org").certificate.serial_number

    first = revoke_participant(kits, "site-a", now=NOW)
    second = revoke_participant(kits, "Alice@Uni.org", now=NOW + timedelta(days=1))

    assert (first.crl.number, second.crl.number) == (1, 2)
    assert second.crl.revoked == frozenset({gateway, user})
    assert second.crl.revoked_on(gateway) == NOW
    assert second.crl.revoked_on(user) == NOW + timedelta(days=1)


def test_revoking_twice_is_refused_and_leaves_the_list_alone(kits: Path) -> None:
    revoke_participant(kits, "site-a", now=NOW)
    before = (kits / "ca" / "revoked.crl.pem").read_bytes()

    with pytest.raises(Conflict, match=r"site-a .* was already revoked on 2026-03-01 12:00:00 UTC"):
        revoke_participant(kits, "site-a", now=NOW + timedelta(days=1))

    assert (kits / "ca" / "revoked.crl.pem").read_bytes() == before


def test_revoking_an_unknown_name_lists_the_known_ones(kits: Path) -> None:
    with pytest.raises(
        NotFound, match=r"no certificate was issued to 'bob'.*orchestrator, site-a, alice@uni.org"
    ):
        revoke_participant(kits, "bob", now=NOW)

    assert not (kits / "ca" / "revoked.crl.pem").exists()


def test_revoke_without_a_ca_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"has no ca/ folder"):
        revoke_participant(tmp_path, "site-a", now=NOW)


def test_a_tampered_crl_on_disk_stops_further_revocations(kits: Path) -> None:
    revoke_participant(kits, "site-a", now=NOW)
    other_ca, other_key = create_root_ca("demo", now=NOW)
    (kits / "ca" / "revoked.crl.pem").write_text(crl_pem(build_crl(other_ca, other_key, [], 9, NOW)))

    with pytest.raises(InvalidInput, match=r"revoked\.crl\.pem: revocation list's signature does not verify"):
        revoke_participant(kits, "alice@uni.org", now=NOW)


def test_the_ca_key_signs_the_list(kits: Path) -> None:
    done = revoke_participant(kits, "site-a", now=NOW)
    ca_key = load_private_key_pem((kits / "ca" / "rootCA.key").read_bytes())

    crl = x509.load_pem_x509_crl(done.path.read_bytes())

    assert crl.is_signature_valid(ca_key.public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
