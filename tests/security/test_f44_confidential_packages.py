"""F44 for confidential packages: a sealed archive with a flipped byte, swapped terms or manifest, or
a truncation is refused by the gateway's model cache before anything is stored, and what is stored is
ciphertext only: no byte of the code is on the gateway's disk."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import pytest

from custos.core.clock import utcnow
from custos.core.wire import ConfidentialTerms, ModelArchive, confidential_message
from custos.gateway.model_cache import ModelCache
from custos.gateway.trust import GatewayTrust
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.registry import (
    PackageRefused,
    Refusal,
    SealedArchive,
    build_archive,
    open_sealed,
    seal_archive,
    sign_message,
)

MANIFEST = b"""\
name = "secret-sauce"
version = "1.0.0"
entrypoint = "sauce:run"
[outputs.result]
kind = "json"
max_bytes = 10000
"""
CODE = b"# THE-OWNERS-SECRET-ALGORITHM\ndef run(dal, datasets, params):\n    return {'n': 1}\n"


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kit]:
    out = tmp_path_factory.mktemp("f44c") / "project"
    people = [
        {"name": "site-a", "type": "gateway", "org": "hospital-a"},
        {"name": "olga", "type": "user", "org": "modelco", "role": "lead_researcher"},
    ]
    provision(ProjectSpec.model_validate({"name": "f44c", "participants": people}), out)
    return {p.name: load_kit(p) for p in out.iterdir() if (p / "config.json").exists()}


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> SealedArchive:
    folder = tmp_path_factory.mktemp("pkg") / "secret-sauce"
    folder.mkdir()
    (folder / "custos-model.toml").write_bytes(MANIFEST)
    (folder / "sauce.py").write_bytes(CODE)
    return seal_archive(
        build_archive(folder), key_id="key-secret-0001", broker_url="https://127.0.0.1:9443",
        measurements=["ab" * 32],
    )  # fmt: skip


def published(sealed: SealedArchive, owner: Kit, data: bytes | None = None,
              terms: ConfidentialTerms | None = None) -> ModelArchive:  # fmt: skip
    data = sealed.data if data is None else data
    from custos.core.digest import sha256_hex

    digest = sha256_hex(data)
    message = confidential_message("secret-sauce", "1.0.0", digest, sealed.terms)
    signed = sign_message("secret-sauce", "1.0.0", digest, message, owner.private_key, owner.certificate)
    return ModelArchive(
        **signed.model_dump(), signer="olga", published_at=utcnow(),
        archive_b64=base64.b64encode(data).decode(), confidential=terms or sealed.terms,
    )  # fmt: skip


class Relay:
    def __init__(self, archive: ModelArchive) -> None:
        self.archive = archive

    def model_archive(self, name: str, version: str) -> ModelArchive:
        return self.archive


@pytest.fixture
def cache(kits: dict[str, Kit], tmp_path: Path) -> ModelCache:
    state = tmp_path / "gateway-state"
    state.mkdir()
    trust = GatewayTrust(kits["site-a"].root_certificate, state, utcnow)
    return ModelCache(state, trust.check_certificate)


def refused(cache: ModelCache, tmp_path: Path, archive: ModelArchive) -> PackageRefused:
    before = sorted(p.as_posix() for p in tmp_path.rglob("*"))
    with pytest.raises(PackageRefused) as refusal:
        cache.fetch(Relay(archive), "secret-sauce@1.0.0")
    assert sorted(p.as_posix() for p in tmp_path.rglob("*")) == before, "a refusal left files behind"
    return refusal.value


def test_f44_the_gateway_stores_ciphertext_only(
    kits: dict[str, Kit], sealed: SealedArchive, cache: ModelCache, tmp_path: Path
) -> None:
    cached = cache.fetch(Relay(published(sealed, kits["olga"])), "secret-sauce@1.0.0")
    assert cached.path is None and cached.terms == sealed.terms
    assert cache.model(cached.digest).terms == sealed.terms  # verified again from disk
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"THE-OWNERS-SECRET" not in path.read_bytes(), f"plaintext code in {path}"


def test_f44_a_flipped_ciphertext_byte_is_refused(
    kits: dict[str, Kit], sealed: SealedArchive, cache: ModelCache, tmp_path: Path
) -> None:
    good = published(sealed, kits["olga"])
    data = bytearray(sealed.data)
    data[len(data) // 2] ^= 1
    flipped = good.model_copy(update={"archive_b64": base64.b64encode(bytes(data)).decode()})
    assert refused(cache, tmp_path, flipped).reason is Refusal.DIGEST_MISMATCH
    # flipped and signed afresh by someone with a publisher's key: the tag still fails in the runtime
    with pytest.raises(PackageRefused) as refusal:
        open_sealed(bytes(data), sealed.data_key, name="secret-sauce", version="1.0.0", terms=sealed.terms)
    assert refusal.value.reason is Refusal.DECRYPT_FAILED


def test_f44_swapped_terms_or_manifest_are_refused(
    kits: dict[str, Kit], sealed: SealedArchive, cache: ModelCache, tmp_path: Path
) -> None:
    looser = sealed.terms.model_copy(update={"measurements": ["ab" * 32, "00" * 32]})
    assert refused(cache, tmp_path, published(sealed, kits["olga"], terms=looser)).reason is (
        Refusal.BAD_SIGNATURE
    )
    manifest = dict(sealed.terms.manifest) | {"columns": {"ssn": "string"}}
    swapped = sealed.terms.model_copy(update={"manifest": manifest})
    assert refused(cache, tmp_path, published(sealed, kits["olga"], terms=swapped)).reason is (
        Refusal.BAD_SIGNATURE
    )


def test_f44_a_truncated_package_is_refused(
    kits: dict[str, Kit], sealed: SealedArchive, cache: ModelCache, tmp_path: Path
) -> None:
    good = published(sealed, kits["olga"])
    cut = good.model_copy(update={"archive_b64": base64.b64encode(sealed.data[:-100]).decode()})
    assert refused(cache, tmp_path, cut).reason is Refusal.DIGEST_MISMATCH
    with pytest.raises(PackageRefused) as refusal:
        open_sealed(sealed.data[:-100], sealed.data_key, name="secret-sauce", version="1.0.0",
                    terms=sealed.terms)  # fmt: skip
    assert refusal.value.reason is Refusal.DECRYPT_FAILED


def test_f44_a_plain_zip_cannot_pass_for_the_sealed_package(sealed: SealedArchive) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("custos-model.toml", MANIFEST)
    with pytest.raises(PackageRefused) as refusal:
        open_sealed(buffer.getvalue(), sealed.data_key, name="secret-sauce", version="1.0.0",
                    terms=sealed.terms)  # fmt: skip
    assert refusal.value.reason is Refusal.NOT_A_ZIP
