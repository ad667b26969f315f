"""E39: a certificate that is expired, not yet valid, revoked, or from another CA is refused, each for its
own stated reason; and a revocation list that was tampered with or signed by another CA is refused.

The certificates come from real provisioning (`provision`, `add_participant`, `revoke_participant`), the
same way an admin makes them, with the clock passed in.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from custos.core.errors import AuthenticationFailed
from custos.core.identity import Identity, Role
from custos.pki import (
    ParticipantSpec,
    ProjectSpec,
    RevocationList,
    add_participant,
    build_crl,
    create_root_ca,
    load_certificate_pem,
    load_crl,
    load_kit,
    revoke_participant,
    verify_certificate,
)
from custos.pki.provision import provision
from custos.pki.revocation import crl_pem

ISSUED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SITE_A = Identity(name="site-a", org="hospital-a", role=Role.GATEWAY)


@dataclass(frozen=True)
class Provisioned:
    out: Path
    root: x509.Certificate
    site_a: x509.Certificate


def provisioned(out: Path, name: str = "demo", certificate_days: int = 30) -> Provisioned:
    spec = ProjectSpec.model_validate(
        {
            "name": name,
            "certificate_days": certificate_days,
            "participants": [
                {"name": "site-a", "type": "gateway", "org": "hospital-a"},
                {"name": "alice", "type": "user", "org": "university", "role": "lead_researcher"},
            ],
        }
    )
    provision(spec, out, now=ISSUED)
    return Provisioned(
        out=out,
        root=load_certificate_pem((out / "ca" / "rootCA.pem").read_bytes()),
        site_a=load_kit(out / "site-a").certificate,
    )


@pytest.fixture
def project(tmp_path: Path) -> Provisioned:
    return provisioned(tmp_path / "kits")


def test_a_valid_certificate_is_accepted(project: Provisioned) -> None:
    assert verify_certificate(project.site_a, project.root, ISSUED + timedelta(days=29)) == SITE_A


def test_an_expired_certificate_is_refused_naming_when_it_expired(project: Provisioned) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        verify_certificate(project.site_a, project.root, ISSUED + timedelta(days=30, seconds=1))

    assert caught.value.message == "certificate for site-a expired on 2026-03-31 12:00:00 UTC"


def test_a_not_yet_valid_certificate_is_refused_naming_from_when(project: Provisioned) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        verify_certificate(project.site_a, project.root, ISSUED - timedelta(hours=1))

    # Certificates start five minutes before issue, to absorb clock skew between machines.
    assert caught.value.message == "certificate for site-a is not valid before 2026-03-01 11:55:00 UTC"


def test_a_short_lived_certificate_added_later_expires_on_its_own_date(project: Provisioned) -> None:
    added = ISSUED + timedelta(days=2)
    spec = ParticipantSpec.model_validate(
        {"name": "site-b", "type": "gateway", "org": "hospital-b", "certificate_days": 1}
    )
    site_b = load_kit(add_participant(project.out, spec, now=added)).certificate

    assert verify_certificate(site_b, project.root, added + timedelta(hours=23)).name == "site-b"
    with pytest.raises(
        AuthenticationFailed, match=r"^certificate for site-b expired on 2026-03-04 12:00:00 UTC$"
    ):
        verify_certificate(site_b, project.root, added + timedelta(days=1, seconds=1))


def test_a_revoked_certificate_is_refused_naming_when_it_was_revoked(project: Provisioned) -> None:
    revoked_at = ISSUED + timedelta(days=3)
    done = revoke_participant(project.out, "site-a", reason="laptop stolen", now=revoked_at)
    revocations = load_crl((project.out / "ca" / "revoked.crl.pem").read_bytes(), project.root)
    alice = load_kit(project.out / "alice").certificate

    with pytest.raises(AuthenticationFailed) as caught:
        verify_certificate(project.site_a, project.root, revoked_at + timedelta(hours=1), revocations)

    assert caught.value.message == "certificate for site-a was revoked on 2026-03-04 12:00:00 UTC"
    assert done.crl.number == 1
    # The list names only site-a: everyone else still gets in.
    assert verify_certificate(alice, project.root, revoked_at, revocations).name == "alice"


def test_a_certificate_from_another_ca_is_refused_even_with_the_same_names(
    project: Provisioned, tmp_path: Path
) -> None:
    # The impostor's CA has the very same project name; only the signature tells them apart.
    other = provisioned(tmp_path / "other", name="demo")

    with pytest.raises(AuthenticationFailed) as caught:
        verify_certificate(other.site_a, project.root, ISSUED + timedelta(days=1))

    assert caught.value.message == "certificate for site-a is not signed by this project's CA"


def _revoked_list(project: Provisioned) -> str:
    revoke_participant(project.out, "site-a", now=ISSUED + timedelta(days=1))
    return (project.out / "ca" / "revoked.crl.pem").read_text()


def _pem(der: bytes) -> str:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN X509 CRL-----\n{lines}\n-----END X509 CRL-----\n"


def test_a_crl_with_a_flipped_byte_in_its_signed_part_is_refused(project: Provisioned) -> None:
    pem = _revoked_list(project)
    der = bytearray(x509.load_pem_x509_crl(pem.encode()).public_bytes(Encoding.DER))
    serial = project.site_a.serial_number.to_bytes(
        (project.site_a.serial_number.bit_length() + 7) // 8, "big"
    )
    at = bytes(der).index(serial)
    der[at + len(serial) - 1] ^= 0x01  # the revoked serial now names some other certificate

    tampered = _pem(bytes(der))
    assert x509.load_pem_x509_crl(tampered.encode())  # still a well-formed CRL: only the signature tells

    with pytest.raises(AuthenticationFailed) as caught:
        load_crl(tampered, project.root)

    assert caught.value.message == (
        "revocation list's signature does not verify with the CA of project demo; "
        "it was altered or signed by another CA"
    )


def test_a_crl_with_a_flipped_byte_anywhere_is_refused(project: Provisioned) -> None:
    pem = _revoked_list(project)
    der = x509.load_pem_x509_crl(pem.encode()).public_bytes(Encoding.DER)

    refused = 0
    for offset in range(0, len(der), 7):
        flipped = bytearray(der)
        flipped[offset] ^= 0x40
        with pytest.raises(AuthenticationFailed, match=r"^revocation list"):
            load_crl(_pem(bytes(flipped)), project.root)
        refused += 1

    assert refused > 20


def test_a_crl_signed_by_another_ca_of_the_same_name_is_refused(project: Provisioned) -> None:
    impostor, impostor_key = create_root_ca("demo", now=ISSUED)
    # An empty list from the impostor would un-revoke everyone, were it accepted.
    forged = crl_pem(build_crl(impostor, impostor_key, [], 99, ISSUED))

    with pytest.raises(AuthenticationFailed, match=r"signature does not verify with the CA of project demo"):
        load_crl(forged, project.root)


def test_a_crl_issued_under_another_name_is_refused(project: Provisioned) -> None:
    impostor, impostor_key = create_root_ca("elsewhere", now=ISSUED)
    forged = crl_pem(build_crl(impostor, impostor_key, [], 1, ISSUED))

    with pytest.raises(AuthenticationFailed, match=re.escape("was issued by 'CN=elsewhere', not by the CA")):
        load_crl(forged, project.root)


def test_the_genuine_list_is_accepted(project: Provisioned) -> None:
    loaded = load_crl(_revoked_list(project), project.root)

    assert isinstance(loaded, RevocationList)
    assert loaded.revoked == frozenset({project.site_a.serial_number})
