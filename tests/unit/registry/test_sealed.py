"""Sealed (confidential) archives: what a holder without the key can check, and what the key opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.core.clock import utcnow
from custos.core.wire import ConfidentialTerms, confidential_message
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.verify import verify_certificate
from custos.registry import (
    PackageRefused,
    Refusal,
    build_archive,
    open_sealed,
    seal_archive,
    sign_message,
    verify_sealed,
)

MEASUREMENT = "ab" * 32


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    out = tmp_path_factory.mktemp("sealed") / "project"
    spec = {"name": "sealed", "participants": [{"name": "olga", "type": "user", "org": "modelco",
                                                "role": "lead_researcher"}]}  # fmt: skip
    provision(ProjectSpec.model_validate(spec), out)
    return load_kit(out / "olga")


def _sealed(package_dir: Path, owner: Kit):  # type: ignore[no-untyped-def]
    built = build_archive(package_dir)
    sealed = seal_archive(
        built, key_id="key-0001-abcd", broker_url="https://127.0.0.1:9443", measurements=[MEASUREMENT]
    )
    message = confidential_message(built.manifest.name, built.manifest.version, sealed.digest, sealed.terms)
    signed = sign_message(
        built.manifest.name, built.manifest.version, sealed.digest, message, owner.private_key,
        owner.certificate,
    )  # fmt: skip
    return built, sealed, signed


def _check(owner: Kit):  # type: ignore[no-untyped-def]
    return lambda cert: verify_certificate(cert, owner.root_certificate, utcnow(), None)


def test_the_ciphertext_holds_no_plaintext_and_verifies_without_the_key(
    package_dir: Path, owner: Kit
) -> None:
    built, sealed, signed = _sealed(package_dir, owner)
    assert b"def run" not in sealed.data and b"cohort_summary" not in sealed.data
    verified = verify_sealed(sealed.data, signed, sealed.terms, _check(owner))
    assert verified.digest == sealed.digest and verified.signer.name == "olga"
    assert verified.manifest == built.manifest
    files = open_sealed(
        sealed.data, sealed.data_key, name="cohort-summary", version="1.0.0", terms=sealed.terms
    )
    assert {f.path for f in files} == {
        "custos-model.toml",
        "cohort_summary/__init__.py",
        "cohort_summary/main.py",
    }


def test_a_flipped_byte_fails_the_digest_and_the_tag(package_dir: Path, owner: Kit) -> None:
    _, sealed, signed = _sealed(package_dir, owner)
    flipped = bytearray(sealed.data)
    flipped[-5] ^= 1
    with pytest.raises(PackageRefused) as refused:
        verify_sealed(bytes(flipped), signed, sealed.terms, _check(owner))
    assert refused.value.reason is Refusal.DIGEST_MISMATCH
    with pytest.raises(PackageRefused) as refused:
        open_sealed(
            bytes(flipped), sealed.data_key, name="cohort-summary", version="1.0.0", terms=sealed.terms
        )
    assert refused.value.reason is Refusal.DECRYPT_FAILED


def test_changed_terms_break_the_signature(package_dir: Path, owner: Kit) -> None:
    _, sealed, signed = _sealed(package_dir, owner)
    looser = ConfidentialTerms.model_validate(sealed.terms.model_dump() | {"measurements": ["cd" * 32]})
    with pytest.raises(PackageRefused) as refused:
        verify_sealed(sealed.data, signed, looser, _check(owner))
    assert refused.value.reason is Refusal.BAD_SIGNATURE


def test_another_key_or_another_name_does_not_decrypt(package_dir: Path, owner: Kit) -> None:
    _, sealed, _ = _sealed(package_dir, owner)
    with pytest.raises(PackageRefused) as refused:
        open_sealed(sealed.data, b"\0" * 32, name="cohort-summary", version="1.0.0", terms=sealed.terms)
    assert refused.value.reason is Refusal.DECRYPT_FAILED
    with pytest.raises(PackageRefused) as refused:  # the AAD binds name@version
        open_sealed(sealed.data, sealed.data_key, name="cohort-summary", version="2.0.0", terms=sealed.terms)
    assert refused.value.reason is Refusal.DECRYPT_FAILED


def test_a_truncated_ciphertext_is_refused(package_dir: Path, owner: Kit) -> None:
    _, sealed, _ = _sealed(package_dir, owner)
    with pytest.raises(PackageRefused) as refused:
        open_sealed(
            sealed.data[:20], sealed.data_key, name="cohort-summary", version="1.0.0", terms=sealed.terms
        )
    assert refused.value.reason is Refusal.NOT_A_ZIP
