"""Startup kits: the folder a participant starts from, and loading it with every check made up front.

A kit holds `cert.pem`, `key.pem` (mode 0600), `rootCA.pem`, `config.json`, `start.sh` and the
CA-signed `manifest.json`; a gateway's kit may also hold the site's `authorization.yaml`, which the
manifest covers like every other file. `load_kit` refuses a kit whose files are missing, unreadable,
altered, or do not belong together, naming the kit folder and the file.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from custos.core.errors import AuthenticationFailed, InvalidInput, KitError
from custos.core.identity import Identity, ParticipantKind, Role, kind_of
from custos.pki.certs import (
    certificate_pem,
    identity_of,
    load_certificate_pem,
    load_private_key_pem,
    private_key_pem,
)
from custos.pki.manifest import check_manifest, read_kit_file, write_manifest
from custos.pki.verify import check_issued_by

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
ROOT_FILE = "rootCA.pem"
CONFIG_FILE = "config.json"
START_FILE = "start.sh"
AUTHORIZATION_FILE = "authorization.yaml"


class KitConfig(BaseModel):
    """What a participant needs besides its credentials: who it is and where the orchestrator is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=128)
    org: str = Field(min_length=1, max_length=63)
    role: str
    kind: str
    orchestrator_url: str = Field(min_length=1, max_length=2048)
    listen_host: str | None = None
    listen_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("role")
    @classmethod
    def _role_known(cls, value: str) -> str:
        if value not in {r.value for r in Role}:
            raise ValueError(
                f"role {value!r} is unknown; accepted roles are {', '.join(r.value for r in Role)}"
            )
        return value

    @field_validator("kind")
    @classmethod
    def _kind_known(cls, value: str) -> str:
        if value not in {k.value for k in ParticipantKind}:
            accepted = ", ".join(k.value for k in ParticipantKind)
            raise ValueError(f"kind {value!r} is unknown; accepted kinds are {accepted}")
        return value

    @field_validator("orchestrator_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(f"orchestrator_url {value!r} must start with https://")
        return value

    @model_validator(mode="after")
    def _kind_matches_role(self) -> KitConfig:
        if kind_of(Role(self.role)).value != self.kind:
            raise ValueError(f"kind {self.kind!r} does not fit role {self.role!r}")
        return self


@dataclass(frozen=True)
class Kit:
    path: Path
    config: KitConfig
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    root_certificate: x509.Certificate

    @property
    def identity(self) -> Identity:
        return identity_of(self.certificate)

    @property
    def cert_path(self) -> Path:
        return self.path / CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.path / KEY_FILE

    @property
    def root_path(self) -> Path:
        return self.path / ROOT_FILE

    @property
    def authorization_path(self) -> Path | None:
        """The site authorization file a gateway's kit carries (signed with the kit), if it has one."""
        path = self.path / AUTHORIZATION_FILE
        return path if path.is_file() else None


def load_kit(path: Path) -> Kit:
    """Load and check a startup kit. Raises KitError naming the folder and what is wrong with it."""
    if not path.is_dir():
        raise KitError(
            f"kit at {path} does not exist or is not a folder; "
            "pass the folder `custos provision create` wrote"
        )
    for name in (CERT_FILE, KEY_FILE, ROOT_FILE, CONFIG_FILE, START_FILE):
        read_kit_file(path, name)
    _check_key_private(path)
    root = _load_cert(path, ROOT_FILE)
    cert = _load_cert(path, CERT_FILE)
    try:
        key = load_private_key_pem(read_kit_file(path, KEY_FILE))
    except InvalidInput as exc:
        raise KitError(f"kit at {path} has an unreadable {KEY_FILE}: {exc.message}") from exc
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise KitError(f"kit at {path} has a {KEY_FILE} that does not match its {CERT_FILE}")
    try:
        check_issued_by(cert, root)
    except AuthenticationFailed as exc:
        raise KitError(
            f"kit at {path} has a {CERT_FILE} that its {ROOT_FILE} does not accept: {exc.message}"
        ) from exc
    try:
        identity = identity_of(cert)
    except AuthenticationFailed as exc:
        raise KitError(f"kit at {path} has a {CERT_FILE} without a Custos identity: {exc.message}") from exc
    config = _load_config(path)
    for field, stated in (("name", identity.name), ("org", identity.org), ("role", identity.role.value)):
        if getattr(config, field) != stated:
            raise KitError(
                f"kit at {path} has a {CONFIG_FILE} whose {field} {getattr(config, field)!r} "
                f"disagrees with {CERT_FILE} ({stated!r})"
            )
    # Last, so the more specific complaints above win; this catches any other edit to a signed file.
    check_manifest(path, root)
    return Kit(path=path, config=config, certificate=cert, private_key=key, root_certificate=root)


def write_kit(
    path: Path,
    config: KitConfig,
    certificate: x509.Certificate,
    private_key: ec.EllipticCurvePrivateKey,
    root_certificate: x509.Certificate,
    start_script: str,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    authorization: str | None = None,
) -> None:
    """Write a kit into the new folder `path` and sign its manifest with the CA key.

    `authorization` is the text of the site authorization file, for a gateway that has one."""
    path.mkdir(mode=0o755)
    (path / CERT_FILE).write_text(certificate_pem(certificate))
    write_private_file(path / KEY_FILE, private_key_pem(private_key))
    (path / ROOT_FILE).write_text(certificate_pem(root_certificate))
    (path / CONFIG_FILE).write_text(config.model_dump_json(indent=2) + "\n")
    start = path / START_FILE
    start.write_text(start_script)
    start.chmod(0o755)
    if authorization is not None:
        (path / AUTHORIZATION_FILE).write_text(authorization, encoding="utf-8")
    write_manifest(path, ca_key)


def write_private_file(path: Path, data: bytes) -> None:
    """Create `path` readable by its owner only; the mode is set at creation, never widened."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _check_key_private(path: Path) -> None:
    mode = stat.S_IMODE((path / KEY_FILE).stat().st_mode)
    if mode & 0o077:
        raise KitError(
            f"kit at {path} has a {KEY_FILE} that other users can access (mode {mode:04o}); "
            f"run: chmod 600 {path / KEY_FILE}"
        )


def _load_cert(path: Path, name: str) -> x509.Certificate:
    try:
        return load_certificate_pem(read_kit_file(path, name))
    except AuthenticationFailed as exc:
        raise KitError(f"kit at {path} has an unreadable {name}: {exc.message}") from exc


def _load_config(path: Path) -> KitConfig:
    try:
        return KitConfig.model_validate(json.loads(read_kit_file(path, CONFIG_FILE)))
    except ValueError as exc:
        detail = str(exc).splitlines()[0]
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "config"
            detail = f"{field}: {first['msg']}"
        raise KitError(f"kit at {path} has an invalid {CONFIG_FILE}: {detail}") from exc


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
