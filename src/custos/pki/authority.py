"""The project admin's CA folder (`OUT/ca/`): what provisioning keeps so it can issue and revoke later.

    ca/rootCA.pem, ca/rootCA.key   the root CA and its key (mode 0600); the key is in no kit
    ca/project.yaml                the project as provisioned; `add` appends each new participant
    ca/issued.json                 every certificate issued: name, org, role, serial, validity, kit
    ca/revoked.crl.pem             the revocation list, once something was revoked

Changes to the folder are made under an exclusive lock on it and each file is replaced atomically, so two
admin commands at once cannot lose each other's records.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from pydantic import BaseModel, ConfigDict, ValidationError

from custos.core.errors import AuthenticationFailed, InvalidInput
from custos.pki.certs import fingerprint, load_certificate_pem, load_private_key_pem
from custos.pki.project import ProjectSpec, load_project

CA_FOLDER = "ca"
CA_CERT_FILE = "rootCA.pem"
CA_KEY_FILE = "rootCA.key"
PROJECT_FILE = "project.yaml"
ISSUED_FILE = "issued.json"
CRL_FILE = "revoked.crl.pem"
ISSUED_VERSION = 1
MAX_ISSUED_BYTES = 64 * 1024 * 1024


class IssuedCertificate(BaseModel):
    """One certificate the root CA issued, and the kit (folder or `.kit` archive) that holds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    org: str
    role: str
    serial: str  # hex, whole bytes, as `openssl x509 -serial` shows it (but lower case)
    fingerprint: str
    not_before: datetime
    not_after: datetime
    kit: str
    revoked_at: datetime | None = None
    revocation_reason: str | None = None

    @property
    def serial_number(self) -> int:
        return int(self.serial, 16)

    @classmethod
    def of(cls, cert: x509.Certificate, *, name: str, org: str, role: str, kit: str) -> IssuedCertificate:
        return cls(
            name=name,
            org=org,
            role=role,
            serial=serial_hex(cert.serial_number),
            fingerprint=fingerprint(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            kit=kit,
        )


class IssuedLedger(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = ISSUED_VERSION
    certificates: list[IssuedCertificate]


@dataclass(frozen=True)
class Authority:
    """The CA folder of one provisioned output folder, read and checked."""

    out_dir: Path
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    spec: ProjectSpec
    issued: list[IssuedCertificate]

    @property
    def folder(self) -> Path:
        return self.out_dir / CA_FOLDER

    def issued_to(self, name: str) -> IssuedCertificate | None:
        matches = [record for record in self.issued if record.name == name]
        return matches[-1] if matches else None


def serial_hex(serial: int) -> str:
    text = format(serial, "x")
    return "0" * (len(text) % 2) + text


def ca_folder(out_dir: Path) -> Path:
    return out_dir / CA_FOLDER


def load_authority(out_dir: Path) -> Authority:
    """Read OUT/ca. Raises InvalidInput naming the missing or unreadable file."""
    folder = ca_folder(out_dir)
    if not folder.is_dir():
        raise InvalidInput(
            f"{out_dir} has no {CA_FOLDER}/ folder; pass the -o folder `custos provision create` wrote"
        )
    for name in (CA_CERT_FILE, CA_KEY_FILE, PROJECT_FILE, ISSUED_FILE):
        if not (folder / name).is_file():
            raise InvalidInput(
                f"{folder / name} is missing; it is written by `custos provision create` "
                "(folders provisioned by an older Custos cannot be extended)"
            )
    try:
        cert = load_certificate_pem((folder / CA_CERT_FILE).read_bytes())
    except AuthenticationFailed as exc:
        raise InvalidInput(f"{folder / CA_CERT_FILE}: {exc.message}") from exc
    try:
        key = load_private_key_pem((folder / CA_KEY_FILE).read_bytes())
    except InvalidInput as exc:
        raise InvalidInput(f"{folder / CA_KEY_FILE}: {exc.message}") from exc
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise InvalidInput(f"{folder / CA_KEY_FILE} is not the key of {folder / CA_CERT_FILE}")
    spec = load_project(folder / PROJECT_FILE)
    return Authority(out_dir=out_dir, certificate=cert, key=key, spec=spec, issued=read_issued(folder))


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def read_issued(folder: Path) -> list[IssuedCertificate]:
    path = folder / ISSUED_FILE
    with path.open("rb") as handle:
        raw = handle.read(MAX_ISSUED_BYTES + 1)
    if len(raw) > MAX_ISSUED_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_ISSUED_BYTES} bytes")
    try:
        ledger = IssuedLedger.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(f"{path} is damaged ({exc.errors()[0]['msg']}); restore it from a backup") from exc
    if ledger.version != ISSUED_VERSION:
        raise InvalidInput(f"{path} has version {ledger.version}; this Custos reads version {ISSUED_VERSION}")
    return ledger.certificates


def issued_json(certificates: list[IssuedCertificate]) -> str:
    return IssuedLedger(certificates=certificates).model_dump_json(indent=2) + "\n"


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` in one step: a reader sees the old file or the new one, never half."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT/ca while the block changes it (a second admin command waits)."""
    folder = ca_folder(out_dir)
    if not folder.is_dir():
        raise InvalidInput(
            f"{out_dir} has no {CA_FOLDER}/ folder; pass the -o folder `custos provision create` wrote"
        )
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
