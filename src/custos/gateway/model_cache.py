"""The model packages this gateway has pulled, verified and unpacked, keyed by archive digest.

    state_dir/models/<digest>.zip     the archive as fetched
    state_dir/models/<digest>.json    its signature (name, version, digest, signer certificate)
    state_dir/models/<digest>/        the unpacked package
    state_dir/models/pins.json        name@version -> digest, the first archive accepted for each

A confidential package (custos.registry.sealed) is kept as ciphertext only, never unpacked: its
`<digest>.json` holds the owner's signed terms too, and it is verified the same way without a key.

`fetch` verifies digest, signature and chain (with this gateway's root CA and revocation list) and
the archive's structure before anything is unpacked (custos.registry.verify). `path` verifies the
stored archive again, with the revocation list in force now, and restores the unpacked folder from it
if a file there was changed. A name@version is pinned to the first digest accepted: an orchestrator
that later serves another archive under the same name@version is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from custos.core.errors import NotFound
from custos.core.identity import Identity
from custos.core.refs import parse_model_ref
from custos.core.wire import ConfidentialTerms, ModelArchive, ModelSignature
from custos.registry import (
    ModelManifest,
    PackageRefused,
    Refusal,
    VerifiedPackage,
    VerifiedSealed,
    unpack_package,
    verify_package,
    verify_sealed,
)
from custos.registry.signature import CertificateCheck

log = logging.getLogger("custos.gateway")
PINS_FILE = "pins.json"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ArchiveSource(Protocol):
    """Where archives come from (the orchestrator client). Nothing it returns is trusted unverified."""

    def model_archive(self, name: str, version: str) -> ModelArchive: ...


@dataclass(frozen=True)
class CachedModel:
    """A verified package. A confidential one is never unpacked: `path` is None and `terms` says
    which key and which runtime measurements it needs."""

    digest: str
    manifest: ModelManifest
    signer: Identity
    path: Path | None
    terms: ConfidentialTerms | None = None


class StoredSignature(ModelSignature):
    """The signature (and a confidential package's terms) kept beside a cached archive."""

    confidential: ConfidentialTerms | None = None


class ModelCache:
    def __init__(self, state_dir: Path, check_certificate: CertificateCheck) -> None:
        self._folder = state_dir / "models"
        self._check = check_certificate

    def fetch(self, source: ArchiveSource, ref: str) -> CachedModel:
        """Pull `ref` (name@version), verify it and unpack it; PackageRefused names what failed."""
        parsed = parse_model_ref(ref)
        pinned = self._pins().get(str(parsed))
        if pinned is not None and self._folder.joinpath(f"{pinned}.zip").is_file():
            return self.model(pinned)
        archive = source.model_archive(parsed.name, parsed.version)
        stored = StoredSignature.model_validate(archive.model_dump(include=set(StoredSignature.model_fields)))
        signed = ModelSignature.model_validate(stored.model_dump(include=set(ModelSignature.model_fields)))
        if (signed.name, signed.version) != (parsed.name, parsed.version):
            raise PackageRefused(
                Refusal.MANIFEST_MISMATCH,
                f"asked for {parsed}, received an archive signed as {signed.name}@{signed.version}",
            )
        if pinned is not None and pinned != signed.digest:
            raise PackageRefused(
                Refusal.DIGEST_MISMATCH,
                f"{parsed} was accepted before as sha256:{pinned}; "
                f"the orchestrator now serves sha256:{signed.digest}",
            )
        try:
            data = base64.b64decode(archive.archive_b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise PackageRefused(Refusal.NOT_A_ZIP, f"{parsed}: the archive is not base64") from exc
        if stored.confidential is not None:
            sealed = verify_sealed(data, signed, stored.confidential, self._check)
            self._store(sealed.digest, data, stored)
            self._pin(str(parsed), sealed.digest)
            log.info("confidential model %s cached as sha256:%s (ciphertext)", parsed, sealed.digest)
            return CachedModel(sealed.digest, sealed.manifest, sealed.signer, None, sealed.terms)
        package = verify_package(data, signed, self._check)
        self._store(package.digest, data, stored)
        path = unpack_package(package, self._folder)
        self._pin(str(parsed), package.digest)
        log.info("model %s cached as sha256:%s, signed by %s", parsed, package.digest, package.signer.name)
        return CachedModel(package.digest, package.manifest, package.signer, path)

    def _store(self, digest: str, data: bytes, stored: StoredSignature) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(self._folder / f"{digest}.zip", data)
        _write_atomic(self._folder / f"{digest}.json", stored.model_dump_json().encode())

    def archive(self, digest: str) -> bytes:
        """The archive of a cached package, its digest, signature and structure verified again now."""
        self._verify_stored(digest)
        return (self._folder / f"{digest}.zip").read_bytes()

    def path(self, digest: str) -> Path:
        """The unpacked folder of a cached package, verified again first (see the module docstring)."""
        path = self.model(digest).path
        if path is None:
            raise NotFound(f"sha256:{digest} is a confidential package: it is never unpacked here")
        return path

    def model(self, digest: str) -> CachedModel:
        package = self._verify_stored(digest)
        if isinstance(package, VerifiedSealed):
            return CachedModel(digest, package.manifest, package.signer, None, package.terms)
        target = self._folder / digest
        if target.exists() and not _matches(target, package):
            log.warning(
                "the unpacked model sha256:%s was changed on disk; restoring it from its archive", digest
            )
            shutil.rmtree(target)
        path = unpack_package(package, self._folder)
        return CachedModel(digest, package.manifest, package.signer, path)

    def _verify_stored(self, digest: str) -> VerifiedPackage | VerifiedSealed:
        if not _DIGEST.match(digest):
            raise NotFound(f"{digest!r} is not a SHA-256 digest")
        archive, signature = self._folder / f"{digest}.zip", self._folder / f"{digest}.json"
        if not archive.is_file() or not signature.is_file():
            raise NotFound(f"no model with digest sha256:{digest} is cached at this gateway")
        try:
            stored = StoredSignature.model_validate_json(signature.read_bytes())
        except ValidationError as exc:
            raise PackageRefused(
                Refusal.BAD_SIGNATURE, f"the stored signature of sha256:{digest} is unreadable"
            ) from exc
        if stored.digest != digest:
            raise PackageRefused(
                Refusal.DIGEST_MISMATCH, f"the stored signature names sha256:{stored.digest}"
            )
        signed = ModelSignature.model_validate(stored.model_dump(include=set(ModelSignature.model_fields)))
        if stored.confidential is not None:
            return verify_sealed(archive.read_bytes(), signed, stored.confidential, self._check)
        return verify_package(archive.read_bytes(), signed, self._check)

    def _pins(self) -> dict[str, str]:
        path = self._folder / PINS_FILE
        if not path.is_file():
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _pin(self, ref: str, digest: str) -> None:
        pins = self._pins()
        if pins.get(ref) != digest:
            pins[ref] = digest
            _write_atomic(self._folder / PINS_FILE, json.dumps(pins, sort_keys=True).encode())


def _matches(folder: Path, package: VerifiedPackage) -> bool:
    """True when `folder` holds exactly the package's files, byte for byte, and nothing else."""
    expected = {f.path: f.data for f in package.files}
    found: set[str] = set()
    for here, dirs, names in os.walk(folder, followlinks=False):
        for name in [*dirs, *names]:
            path = Path(here) / name
            if path.is_symlink():
                return False
        for name in names:
            rel = (Path(here) / name).relative_to(folder).as_posix()
            if rel not in expected or (Path(here) / name).read_bytes() != expected[rel]:
                return False
            found.add(rel)
    return found == set(expected)


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
