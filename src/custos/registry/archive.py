"""Deterministic model archives: the same folder always gives the same bytes, so the same digest.

An archive is a zip of the regular files under a package folder: entries sorted by path, no
directory entries, every timestamp 1980-01-01 00:00:00, mode 0644 (0755 for files executable by
their owner), Unix as the creating system, no extra fields, no comment, DEFLATE at level 6. Caches
and VCS folders (`__pycache__`, `.git`, ...) are left out; a symbolic link, a device or a path that
is not a plain name is refused, as are folders beyond the limits below.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from custos.core.digest import sha256_hex
from custos.core.errors import InvalidInput
from custos.registry.manifest import MANIFEST_FILE, ModelManifest, load_manifest, parse_manifest

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
EXEC_MODE = 0o755
COMPRESS_LEVEL = 6
SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".venv"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")
# A path part: a plain name, not `.` or `..`, no separators, no control characters.
PART = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.][A-Za-z0-9_.+=@-]{0,127}$")


@dataclass(frozen=True)
class ArchiveLimits:
    """Every size a model archive may have. The JSON upload (base64) must fit the API's body limit."""

    max_archive_bytes: int = 8 * 1024 * 1024
    max_entries: int = 2000
    max_entry_bytes: int = 32 * 1024 * 1024
    max_total_bytes: int = 64 * 1024 * 1024
    max_ratio: int = 100  # decompressed / compressed, for entries larger than `ratio_floor`
    ratio_floor: int = 64 * 1024
    max_path_chars: int = 512
    max_depth: int = 16


LIMITS = ArchiveLimits()


@dataclass(frozen=True)
class BuiltArchive:
    data: bytes
    digest: str
    manifest: ModelManifest
    files: int

    @property
    def size(self) -> int:
        return len(self.data)


def package_files(folder: Path, limits: ArchiveLimits = LIMITS) -> list[str]:
    """The archive paths of the files under `folder`, sorted. Refuses links and special files."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder; a model package is a folder with {MANIFEST_FILE}")
    found: list[str] = []
    for here, dirs, names in os.walk(folder, followlinks=False):
        rel_dir = Path(here).relative_to(folder)
        for name in list(dirs):
            if name in SKIPPED_DIRS:
                dirs.remove(name)
            elif (Path(here) / name).is_symlink():
                raise InvalidInput(f"{rel_dir / name} is a symbolic link; a package holds regular files only")
        for name in names:
            if name.endswith(SKIPPED_SUFFIXES):
                continue
            path = Path(here) / name
            info = path.lstat()
            rel = (rel_dir / name).as_posix()
            if not stat.S_ISREG(info.st_mode):
                kind = "symbolic link" if stat.S_ISLNK(info.st_mode) else "special file"
                raise InvalidInput(f"{rel} is a {kind}; a package holds regular files only")
            check_entry_path(rel, limits)
            found.append(rel)
            if len(found) > limits.max_entries:
                raise InvalidInput(f"{folder} holds more than {limits.max_entries} files")
    return sorted(found)


def check_entry_path(path: str, limits: ArchiveLimits = LIMITS) -> None:
    """Raise InvalidInput unless `path` is relative, made of plain names and within the limits."""
    parts = path.split("/")
    if len(path) > limits.max_path_chars or len(parts) > limits.max_depth:
        raise InvalidInput(f"path {path[:80]!r} is too long or too deep")
    if not all(PART.match(p) for p in parts):
        raise InvalidInput(
            f"path {path!r} is not a plain relative path: use letters, digits, '.', '_', '-' in each part"
        )


def build_archive(folder: Path, limits: ArchiveLimits = LIMITS) -> BuiltArchive:
    """The deterministic archive of the package in `folder`, checked against its own manifest."""
    load_manifest(folder)  # a clear error before any work when the manifest is missing or wrong
    names = package_files(folder, limits)
    manifest_bytes = b""
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in names:
            path = folder / name
            data = path.read_bytes()
            if len(data) > limits.max_entry_bytes:
                raise InvalidInput(
                    f"{name} has {len(data)} bytes; a package file may have {limits.max_entry_bytes}"
                )
            if name == MANIFEST_FILE:
                manifest_bytes = data
            total += len(data)
            if total > limits.max_total_bytes:
                raise InvalidInput(f"{folder} holds more than {limits.max_total_bytes} bytes of files")
            info = entry_info(name, executable=bool(path.stat().st_mode & stat.S_IXUSR))
            zf.writestr(info, data, compresslevel=COMPRESS_LEVEL)
    data = buffer.getvalue()
    if len(data) > limits.max_archive_bytes:
        raise InvalidInput(
            f"the archive of {folder} has {len(data)} bytes; "
            f"a model archive may have {limits.max_archive_bytes}"
        )
    manifest = parse_manifest(manifest_bytes)  # the bytes archived are the bytes checked
    return BuiltArchive(data=data, digest=sha256_hex(data), manifest=manifest, files=len(names))


def entry_info(name: str, *, executable: bool = False) -> zipfile.ZipInfo:
    """The one header every entry of a Custos archive has, whatever the machine that built it."""
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.create_system = 3  # Unix, so the mode in external_attr is read as a mode
    info.external_attr = (stat.S_IFREG | (EXEC_MODE if executable else FILE_MODE)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info
