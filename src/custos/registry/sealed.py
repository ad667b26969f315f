"""Confidential packages: the registry's deterministic archive, sealed with AES-256-GCM under a fresh
data key that only the owner's key broker holds (docs/confidential.md).

    sealed = MAGIC || nonce (12 bytes) || AES-256-GCM(data key, archive, aad)
    aad    = "custos-sealed-v1\\n{name}\\n{version}\\n{key_id}\\n{plaintext digest}"

The owner signs `confidential_message(name, version, sha256(sealed), terms)`: the ciphertext and the
terms (plaintext digest, key id, broker, measurements, manifest) together. `verify_sealed` is what the
orchestrator and the gateway run: they hold only ciphertext, so they check its size, digest, the
owner's signature and the terms' manifest; nothing there can decrypt it. `open_sealed` runs inside the
attested sandbox with the released data key: the tag, then the plaintext digest, then every check
`verify_package` makes of a plain archive (paths, links, bombs, the manifest).
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from custos.core.digest import sha256_hex
from custos.core.identity import Identity
from custos.core.wire import ConfidentialTerms, ModelSignature, confidential_message
from custos.registry.archive import LIMITS, ArchiveLimits, BuiltArchive
from custos.registry.manifest import MANIFEST_FILE, ModelManifest, parse_manifest
from custos.registry.refusals import PackageRefused, Refusal
from custos.registry.signature import CertificateCheck, check_signature
from custos.registry.verify import PackageFile, read_entries

MAGIC = b"CUSTOS-SEALED-1\n"
NONCE_BYTES = 12
KEY_BYTES = 32
TAG_BYTES = 16


@dataclass(frozen=True)
class SealedArchive:
    """A sealed archive as its owner builds it. `data_key` goes to the owner's key broker only."""

    data: bytes
    digest: str
    data_key: bytes
    terms: ConfidentialTerms
    manifest: ModelManifest


@dataclass(frozen=True)
class VerifiedSealed:
    """Ciphertext that passed every check a holder without the key can make."""

    digest: str
    manifest: ModelManifest
    signer: Identity
    terms: ConfidentialTerms


def sealed_aad(name: str, version: str, key_id: str, plaintext_digest: str) -> bytes:
    return f"custos-sealed-v1\n{name}\n{version}\n{key_id}\n{plaintext_digest}".encode()


def seal_archive(
    built: BuiltArchive,
    *,
    key_id: str,
    broker_url: str,
    measurements: list[str],
    data_key: bytes | None = None,
) -> SealedArchive:
    """Encrypt `built` under `data_key` (a fresh random 256-bit key by default)."""
    key = data_key if data_key is not None else AESGCM.generate_key(bit_length=256)
    if len(key) != KEY_BYTES:
        raise ValueError("a data key has 32 bytes")
    manifest = built.manifest
    terms = ConfidentialTerms(
        plaintext_digest=built.digest,
        key_id=key_id,
        broker_url=broker_url,
        measurements=sorted(set(measurements)),
        manifest=manifest.model_dump(mode="json"),
    )
    nonce = os.urandom(NONCE_BYTES)
    aad = sealed_aad(manifest.name, manifest.version, key_id, built.digest)
    data = MAGIC + nonce + AESGCM(key).encrypt(nonce, built.data, aad)
    return SealedArchive(data, sha256_hex(data), key, terms, manifest)


def verify_sealed(
    data: bytes,
    signed: ModelSignature,
    terms: ConfidentialTerms,
    check_certificate: CertificateCheck,
    limits: ArchiveLimits = LIMITS,
) -> VerifiedSealed:
    """Size, ciphertext digest, the owner's signature over ciphertext and terms, and the terms'
    manifest (valid, naming the signed name@version); PackageRefused names the first failure."""
    what = f"{signed.name}@{signed.version}"
    overhead = len(MAGIC) + NONCE_BYTES + TAG_BYTES
    if len(data) > limits.max_archive_bytes + overhead:
        raise PackageRefused(
            Refusal.TOO_LARGE,
            f"{what} has {len(data)} bytes; a sealed archive may have {limits.max_archive_bytes + overhead}",
        )
    actual = sha256_hex(data)
    if not hmac.compare_digest(actual, signed.digest):
        raise PackageRefused(
            Refusal.DIGEST_MISMATCH,
            f"{what}: the ciphertext's SHA-256 is {actual}, not the signed {signed.digest}; "
            "it was changed or truncated after it was signed",
        )
    message = confidential_message(signed.name, signed.version, signed.digest, terms)
    signer = check_signature(signed, check_certificate, message)
    if not data.startswith(MAGIC) or len(data) < overhead:
        raise PackageRefused(Refusal.NOT_A_ZIP, f"{what} is not a sealed archive")
    try:
        manifest = ModelManifest.model_validate(terms.manifest)
    except ValidationError as exc:
        raise PackageRefused(Refusal.TERMS_INVALID, f"{what}: its manifest does not validate") from exc
    if (manifest.name, manifest.version) != (signed.name, signed.version):
        raise PackageRefused(
            Refusal.MANIFEST_MISMATCH, f"the package signed as {what} carries the manifest of {manifest.ref}"
        )
    return VerifiedSealed(actual, manifest, signer, terms)


def decrypt_sealed(
    data: bytes,
    data_key: bytes,
    *,
    name: str,
    version: str,
    terms: ConfidentialTerms,
    limits: ArchiveLimits = LIMITS,
) -> bytes:
    """The plaintext archive, decrypted in memory, once `open_sealed`'s checks pass."""
    plain, _ = _decrypt(data, data_key, name, version, terms, limits)
    return plain


def open_sealed(
    data: bytes,
    data_key: bytes,
    *,
    name: str,
    version: str,
    terms: ConfidentialTerms,
    limits: ArchiveLimits = LIMITS,
) -> tuple[PackageFile, ...]:
    """Decrypt `data` in memory and check the plaintext as `verify_package` checks an archive:
    the AES-GCM tag (which covers name, version, key id and plaintext digest), the plaintext digest,
    the archive's structure, and that its manifest is the one in the signed terms."""
    _, files = _decrypt(data, data_key, name, version, terms, limits)
    return files


def _decrypt(
    data: bytes, data_key: bytes, name: str, version: str, terms: ConfidentialTerms, limits: ArchiveLimits
) -> tuple[bytes, tuple[PackageFile, ...]]:
    what = f"{name}@{version}"
    head = len(MAGIC) + NONCE_BYTES
    if not data.startswith(MAGIC) or len(data) < head + TAG_BYTES:
        raise PackageRefused(Refusal.NOT_A_ZIP, f"{what} is not a sealed archive")
    aad = sealed_aad(name, version, terms.key_id, terms.plaintext_digest)
    try:
        plain = AESGCM(data_key).decrypt(data[len(MAGIC) : head], data[head:], aad)
    except (InvalidTag, ValueError) as exc:
        raise PackageRefused(
            Refusal.DECRYPT_FAILED,
            f"{what} does not decrypt: the ciphertext was changed, or the key is not its data key",
        ) from exc
    if not hmac.compare_digest(sha256_hex(plain), terms.plaintext_digest):
        raise PackageRefused(Refusal.PLAINTEXT_MISMATCH, f"{what} is not the archive its owner signed")
    files = read_entries(plain, what, limits)
    manifest = ModelManifest.model_validate(terms.manifest)
    inner = next((f for f in files if f.path == MANIFEST_FILE), None)
    if inner is None:
        raise PackageRefused(Refusal.MANIFEST_MISSING, f"{what} has no {MANIFEST_FILE} at its root")
    if parse_manifest(inner.data) != manifest:
        raise PackageRefused(
            Refusal.MANIFEST_MISMATCH, f"{what}: the manifest inside is not the one its owner published"
        )
    return plain, files
