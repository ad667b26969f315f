"""Password-protected kit archives (`NAME.kit`): one file to hand a participant instead of a folder.

An archive is a tar of the kit folder, encrypted with AES-256-GCM under a key that Scrypt derives from
a password. The header is authenticated with the content, so no byte of the file can change unnoticed:

    offset  size  field
    0       8     magic  b"CUSTOKIT"
    8       1     format version (1: Scrypt n=2**15, r=8, p=1; AES-256-GCM)
    9       16    Scrypt salt
    25      12    AES-GCM nonce
    37      ...   ciphertext, then the 16-byte GCM tag

Unpacking accepts only what a kit is: regular files, one level under one folder named like a
participant, within fixed counts and sizes; links, devices, absolute paths and `..` are refused. The
unpacked kit must then pass `load_kit`, which checks its CA-signed manifest.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import tarfile
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from custos.core.errors import AuthenticationFailed, InvalidInput, KitError
from custos.pki.kit import load_kit, write_private_file
from custos.pki.manifest import MANIFEST_FILE, MAX_KIT_FILE_BYTES

ARCHIVE_SUFFIX = ".kit"
MAGIC = b"CUSTOKIT"
FORMAT_VERSION = 1
SALT_BYTES = 16
NONCE_BYTES = 12
HEADER_BYTES = len(MAGIC) + 1 + SALT_BYTES + NONCE_BYTES
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD_CHARS = 8
MAX_ENTRIES = 32
MAX_CONTENT_BYTES = 1024 * 1024
MAX_ARCHIVE_BYTES = 2 * MAX_CONTENT_BYTES

_KIT_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,127}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)


def write_kit_archive(kit_dir: Path, dest: Path, password: bytes) -> None:
    """Write the kit in `kit_dir` to the new file `dest`, encrypted under `password`.

    The kit is checked with `load_kit` first, and only the files its signed manifest lists (plus the
    manifest) go in, so state a component wrote into its kit folder later is left out."""
    check_archive_password(password)
    load_kit(kit_dir)
    names = sorted([*_manifest_files(kit_dir), MANIFEST_FILE])
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            path = kit_dir / name
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{kit_dir.name}/{name}")
            info.size = len(data)
            info.mode = path.stat().st_mode & 0o755
            info.mtime = int(path.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
    salt, nonce = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(NONCE_BYTES)
    header = MAGIC + bytes([FORMAT_VERSION]) + salt + nonce
    sealed = AESGCM(_derive_key(password, salt)).encrypt(nonce, plain.getvalue(), header)
    try:
        write_private_file(dest, header + sealed)
    except FileExistsError as exc:
        raise InvalidInput(f"{dest} already exists; kit archives are never overwritten") from exc


def unpack_kit_archive(archive: Path, dest: Path, password: bytes) -> Path:
    """Decrypt `archive`, unpack its kit into `dest/<kit name>` and check it. Returns the kit folder.

    Nothing is left in `dest` when any step fails."""
    files, name = _read_archive(archive, password)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    if target.exists():
        raise InvalidInput(f"{target} already exists; unpack into another folder or move it away")
    workspace = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=dest))
    try:
        folder = workspace / name
        folder.mkdir(mode=0o755)
        for file_name, (mode, data) in files.items():
            _write_file(folder / file_name, data, mode)
        if target.exists():
            raise InvalidInput(f"{target} appeared while unpacking; unpack into another folder")
        os.rename(folder, target)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    try:
        load_kit(target)
    except KitError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise KitError(
            f"archive {archive} holds a kit that fails its checks, so nothing was kept: {exc.message}"
        ) from exc
    return target


def check_archive_password(password: bytes) -> None:
    """Refuse a password too short to protect a kit. Checked before any work, so nothing is built."""
    if len(password.decode("utf-8", errors="replace")) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"kit archive password is too short; use at least {MIN_PASSWORD_CHARS} characters")


def _manifest_files(kit_dir: Path) -> list[str]:
    document = json.loads((kit_dir / MANIFEST_FILE).read_bytes())
    return [str(name) for name in document["files"]]


def _derive_key(password: bytes, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(password)


def _read_archive(archive: Path, password: bytes) -> tuple[dict[str, tuple[int, bytes]], str]:
    if not archive.is_file():
        raise InvalidInput(f"kit archive {archive} does not exist or is not a file")
    with archive.open("rb") as handle:
        raw = handle.read(MAX_ARCHIVE_BYTES + 1)
    if len(raw) > MAX_ARCHIVE_BYTES:
        raise InvalidInput(f"{archive} is larger than {MAX_ARCHIVE_BYTES} bytes; it is not a kit archive")
    if len(raw) < HEADER_BYTES or not raw.startswith(MAGIC):
        raise InvalidInput(f"{archive} is not a Custos kit archive (it does not start with {MAGIC.decode()})")
    version = raw[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise InvalidInput(
            f"{archive} has kit archive format {version}; this Custos reads format {FORMAT_VERSION}"
        )
    header = raw[:HEADER_BYTES]
    salt = header[len(MAGIC) + 1 : len(MAGIC) + 1 + SALT_BYTES]
    nonce = header[-NONCE_BYTES:]
    try:
        plain = AESGCM(_derive_key(password, salt)).decrypt(nonce, raw[HEADER_BYTES:], header)
    except InvalidTag as exc:
        raise AuthenticationFailed(
            f"wrong password or damaged archive {archive}: its contents do not authenticate "
            "under this password"
        ) from exc
    return _read_tar(plain, archive)


def _read_tar(plain: bytes, archive: Path) -> tuple[dict[str, tuple[int, bytes]], str]:
    """The kit's files (name -> (mode, bytes)) and its folder name, refusing anything a kit never holds."""

    def refuse(why: str) -> InvalidInput:
        return InvalidInput(f"{archive} holds {why}; a kit archive holds only the files of one kit folder")

    files: dict[str, tuple[int, bytes]] = {}
    kit_name: str | None = None
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tar:
            count = 0
            while (member := tar.next()) is not None:
                count += 1
                if count > MAX_ENTRIES:
                    raise refuse(f"more than {MAX_ENTRIES} entries")
                parts = _entry_parts(member.name)
                if parts is None:
                    raise refuse(f"an entry with an unsafe path {member.name!r}")
                if kit_name is None:
                    kit_name = parts[0]
                elif parts[0] != kit_name:
                    raise refuse(f"entries of two folders ({kit_name!r} and {parts[0]!r})")
                if member.type == tarfile.DIRTYPE and len(parts) == 1:
                    continue
                if member.type not in _REGULAR or len(parts) != 2:
                    raise refuse(f"{member.name!r}, which is not a regular file directly in the kit folder")
                if parts[1] in files:
                    raise refuse(f"{member.name!r} twice")
                if member.size > MAX_KIT_FILE_BYTES:
                    raise refuse(f"{member.name!r} of {member.size} bytes (at most {MAX_KIT_FILE_BYTES})")
                total += member.size
                if total > MAX_CONTENT_BYTES:
                    raise refuse(f"more than {MAX_CONTENT_BYTES} bytes in all")
                stream = tar.extractfile(member)
                data = stream.read(MAX_KIT_FILE_BYTES + 1) if stream is not None else b""
                if len(data) != member.size:
                    raise refuse(f"a truncated {member.name!r}")
                files[parts[1]] = (member.mode & 0o755, data)
    except tarfile.TarError as exc:
        raise InvalidInput(f"{archive} decrypts but holds no readable tar ({exc})") from exc
    if kit_name is None or not files:
        raise refuse("no files")
    return files, kit_name


def _entry_parts(name: str) -> tuple[str, ...] | None:
    """The parts of a tar entry name, or None unless it is `KIT` or `KIT/FILE` with plain names."""
    # Split by hand: pathlib would quietly drop "." parts and doubled slashes.
    parts = tuple(name.removesuffix("/").split("/"))
    if not 1 <= len(parts) <= 2 or not _KIT_NAME.match(parts[0]) or parts[0] in {".", ".."}:
        return None
    if len(parts) == 2 and (not _FILE_NAME.match(parts[1]) or parts[1] in {".", ".."}):
        return None
    return parts


def _write_file(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        os.fchmod(handle.fileno(), mode)
