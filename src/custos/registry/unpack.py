"""Unpacking a verified package into a cache folder named by its digest, all or nothing.

Files are written into a fresh temporary folder beside the target, each opened with O_EXCL and
O_NOFOLLOW under a path checked to stay inside it, and the folder is renamed into place only when
every file is written. A folder already in place for the digest is left as it is.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from custos.registry.verify import VerifiedPackage

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def unpack_package(package: VerifiedPackage, cache_dir: Path) -> Path:
    """`cache_dir/<digest>` holding the package's files. Idempotent; nothing partial is left behind."""
    if not _DIGEST.match(package.digest):
        raise ValueError(f"not a SHA-256 digest: {package.digest!r}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / package.digest
    if target.is_dir():
        return target
    workspace = Path(tempfile.mkdtemp(prefix=f".{package.digest[:12]}.", suffix=".partial", dir=cache_dir))
    try:
        root = workspace / "package"
        root.mkdir(mode=0o755)
        for item in package.files:
            path = root.joinpath(*item.path.split("/"))
            if not path.resolve().is_relative_to(root.resolve()):
                raise ValueError(
                    f"{item.path!r} leaves the package folder"
                )  # verify_package refuses it first
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(item.data)
                os.fchmod(handle.fileno(), 0o755 if item.executable else 0o644)
        try:
            os.rename(root, target)
        except OSError:
            if not target.is_dir():  # another process may have put the same digest in place first
                raise
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return target
