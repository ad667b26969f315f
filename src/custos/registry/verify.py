"""Verification of a model archive, entirely in memory, before a single byte is unpacked.

`verify_package` checks, in this order, and stops at the first failure with a PackageRefused that
names its reason:
1. size: the archive is within its cap;
2. digest: its SHA-256 equals the signed digest (one flipped byte or a truncation stops here);
3. signature: the signer's certificate passes the caller's check, their role may publish, and the
   signature covers (name, version, digest);
4. structure: it is a zip; at most `max_entries` entries; each entry a regular file (no directory,
   symbolic link, hard link or device) with a plain relative path (no `..`, no absolute path, no
   backslash), named once, neither encrypted nor with extra fields, stored or deflated;
5. sizes: declared sizes within the caps, no entry with a compression ratio above `max_ratio`, and
   the bytes actually decompressed (streamed, chunk by chunk) within the declared sizes and caps;
6. manifest: `custos-model.toml` at the root parses and names the signed name and version (so a
   manifest swapped into a validly signed archive of another model is refused).
"""

from __future__ import annotations

import hmac
import io
import stat
import zipfile
import zlib
from dataclasses import dataclass

from custos.core.digest import sha256_hex
from custos.core.errors import InvalidInput
from custos.core.identity import Identity
from custos.core.wire import ModelSignature
from custos.registry.archive import LIMITS, ArchiveLimits, check_entry_path
from custos.registry.manifest import MANIFEST_FILE, ModelManifest, parse_manifest
from custos.registry.refusals import PackageRefused, Refusal
from custos.registry.signature import CertificateCheck, check_signature

CHUNK_BYTES = 64 * 1024
# The PKWARE Unix extra field: where zip stores the target of a hard or symbolic link.
UNIX_LINK_EXTRA = 0x000D
_ENCRYPTED = 0x1
_DOS_DIRECTORY = 0x10


@dataclass(frozen=True)
class PackageFile:
    path: str
    data: bytes
    executable: bool


@dataclass(frozen=True)
class VerifiedPackage:
    """An archive that passed every check: its files (in memory), manifest, digest and signer."""

    digest: str
    manifest: ModelManifest
    signer: Identity
    files: tuple[PackageFile, ...]


def verify_package(
    data: bytes,
    signed: ModelSignature,
    check_certificate: CertificateCheck,
    limits: ArchiveLimits = LIMITS,
) -> VerifiedPackage:
    """Every check of the module docstring, or PackageRefused naming the first that failed."""
    what = f"{signed.name}@{signed.version}"
    if len(data) > limits.max_archive_bytes:
        raise PackageRefused(
            Refusal.TOO_LARGE,
            f"{what} has {len(data)} bytes; a model archive may have {limits.max_archive_bytes}",
        )
    actual = sha256_hex(data)
    if not hmac.compare_digest(actual, signed.digest):
        raise PackageRefused(
            Refusal.DIGEST_MISMATCH,
            f"{what}: the archive's SHA-256 is {actual}, not the signed {signed.digest}; "
            "it was changed or truncated after it was signed",
        )
    signer = check_signature(signed, check_certificate)
    files = read_entries(data, what, limits)
    manifest = _manifest(files, signed)
    return VerifiedPackage(digest=actual, manifest=manifest, signer=signer, files=files)


def read_entries(data: bytes, what: str, limits: ArchiveLimits = LIMITS) -> tuple[PackageFile, ...]:
    """The files of the zip in `data`, after steps 4 and 5 of the module docstring."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise PackageRefused(Refusal.NOT_A_ZIP, f"{what} is not a readable zip archive ({exc})") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise PackageRefused(
                Refusal.TOO_MANY_ENTRIES, f"{what} has {len(infos)} entries; at most {limits.max_entries}"
            )
        _check_headers(infos, what, limits)
        return tuple(_read(zf, info, what, limits) for info in infos)


def _check_headers(infos: list[zipfile.ZipInfo], what: str, limits: ArchiveLimits) -> None:
    seen: set[str] = set()
    folders: set[str] = set()
    declared = 0
    for info in infos:
        name = info.filename
        _check_path(name, what, limits)
        _check_kind(info, what)
        key = name.casefold()
        if key in seen:
            raise PackageRefused(Refusal.DUPLICATE_ENTRY, f"{what} holds {name!r} twice")
        seen.add(key)
        parts = key.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
        if info.flag_bits & _ENCRYPTED:
            raise PackageRefused(Refusal.UNSUPPORTED_ENTRY, f"{what}: entry {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PackageRefused(
                Refusal.UNSUPPORTED_ENTRY,
                f"{what}: entry {name!r} uses compression method {info.compress_type}; "
                "only stored and deflated are read",
            )
        if info.file_size > limits.max_entry_bytes:
            raise PackageRefused(
                Refusal.ZIP_BOMB,
                f"{what}: entry {name!r} declares {info.file_size} bytes; "
                f"an entry may have {limits.max_entry_bytes}",
            )
        declared += info.file_size
        if declared > limits.max_total_bytes:
            raise PackageRefused(
                Refusal.ZIP_BOMB,
                f"{what} declares more than {limits.max_total_bytes} bytes once decompressed",
            )
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise PackageRefused(
                Refusal.ZIP_BOMB,
                f"{what}: entry {name!r} expands {info.compress_size} bytes to {info.file_size} "
                f"(more than {limits.max_ratio} times)",
            )
    clash = sorted(folders & seen)
    if clash:
        raise PackageRefused(Refusal.DUPLICATE_ENTRY, f"{what}: {clash[0]!r} is both a file and a folder")


def _check_path(name: str, what: str, limits: ArchiveLimits) -> None:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise PackageRefused(Refusal.UNSAFE_PATH, f"{what}: entry {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise PackageRefused(
            Refusal.UNSAFE_PATH, f"{what}: entry {name!r} climbs out of the package with '..'"
        )
    if name.endswith("/"):
        raise PackageRefused(
            Refusal.SPECIAL_FILE, f"{what}: entry {name!r} is a directory; a package lists files only"
        )
    try:
        check_entry_path(name, limits)
    except InvalidInput as exc:
        raise PackageRefused(Refusal.UNSAFE_PATH, f"{what}: entry {exc.message}") from exc


def _check_kind(info: zipfile.ZipInfo, what: str) -> None:
    name = info.filename
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise PackageRefused(Refusal.LINK, f"{what}: entry {name!r} is a symbolic link")
    extra_ids = _extra_ids(info.extra)
    if UNIX_LINK_EXTRA in extra_ids:
        raise PackageRefused(
            Refusal.LINK,
            f"{what}: entry {name!r} carries a Unix link field (0x000d): a hard or symbolic link",
        )
    if kind not in (0, stat.S_IFREG) or info.external_attr & _DOS_DIRECTORY:
        label = {
            stat.S_IFCHR: "a character device",
            stat.S_IFBLK: "a block device",
            stat.S_IFIFO: "a named pipe",
            stat.S_IFSOCK: "a socket",
            stat.S_IFDIR: "a directory",
        }.get(kind, "a directory" if info.external_attr & _DOS_DIRECTORY else f"of file type {kind:o}")
        raise PackageRefused(Refusal.SPECIAL_FILE, f"{what}: entry {name!r} is {label}, not a regular file")
    if extra_ids:
        raise PackageRefused(
            Refusal.UNSUPPORTED_ENTRY,
            f"{what}: entry {name!r} has extra fields ({', '.join(f'0x{i:04x}' for i in extra_ids)}); "
            "`custos model publish` writes none",
        )


def _extra_ids(extra: bytes) -> list[int]:
    ids: list[int] = []
    at = 0
    while at + 4 <= len(extra):
        ids.append(int.from_bytes(extra[at : at + 2], "little"))
        at += 4 + int.from_bytes(extra[at + 2 : at + 4], "little")
    if at != len(extra):
        ids.append(-1)  # a malformed trailer: refused as an unknown field
    return ids


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str, limits: ArchiveLimits) -> PackageFile:
    """One entry's bytes, decompressed chunk by chunk and never past its declared size."""
    chunks: list[bytes] = []
    got = 0
    try:
        with zf.open(info) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                got += len(chunk)
                if got > info.file_size or got > limits.max_entry_bytes:
                    raise PackageRefused(
                        Refusal.ZIP_BOMB,
                        f"{what}: entry {info.filename!r} decompresses past "
                        f"its declared {info.file_size} bytes",
                    )
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise PackageRefused(
            Refusal.DAMAGED_ENTRY, f"{what}: entry {info.filename!r} does not decompress cleanly ({exc})"
        ) from exc
    if got != info.file_size:
        raise PackageRefused(
            Refusal.DAMAGED_ENTRY,
            f"{what}: entry {info.filename!r} holds {got} bytes, not the {info.file_size} it declares",
        )
    executable = bool((info.external_attr >> 16) & stat.S_IXUSR)
    return PackageFile(path=info.filename, data=b"".join(chunks), executable=executable)


def _manifest(files: tuple[PackageFile, ...], signed: ModelSignature) -> ModelManifest:
    what = f"{signed.name}@{signed.version}"
    found = next((f for f in files if f.path == MANIFEST_FILE), None)
    if found is None:
        raise PackageRefused(Refusal.MANIFEST_MISSING, f"{what} has no {MANIFEST_FILE} at its root")
    try:
        manifest = parse_manifest(found.data)
    except InvalidInput as exc:
        raise PackageRefused(Refusal.MANIFEST_INVALID, f"{what}: {exc.message}") from exc
    if (manifest.name, manifest.version) != (signed.name, signed.version):
        raise PackageRefused(
            Refusal.MANIFEST_MISMATCH,
            f"the archive signed as {what} holds the manifest of {manifest.ref}",
        )
    return manifest
