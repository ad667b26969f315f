"""What the gateway learnt by profiling a dataset, kept in its state folder so that a restart with
the same bytes and the same minimum cell count publishes without profiling again.

An entry is found by the digest of the file's bytes (`content_lineage`, taken at every start: a
changed byte is a miss), the dataset's name, path and format, the minimum cell count in force, and
this module's version. It holds the profiled schema, the rounded row count, the mock table (as Arrow
IPC, base64) and the rows' fingerprint. The state folder is the gateway's own (mode 0700), as its
journal and budget ledger are. A file that cannot be read or parsed is a miss, never an error: the
dataset is then profiled as on a first start and the entry written again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from custos.core.schema import DatasetSchema
from custos.data.catalog import DatasetEntry

VERSION = "profile-cache-v1"
CACHE_FOLDER = "profiles"


@dataclass(frozen=True)
class CachedProfile:
    schema: DatasetSchema
    row_count: int
    mock_b64: str
    lineage: str


def cache_key(entry: DatasetEntry, file_lineage: str, min_count: int) -> str:
    parts = [VERSION, entry.name, str(entry.path), entry.format, file_lineage, str(min_count)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class ProfileCache:
    def __init__(self, state_dir: Path) -> None:
        self._folder = state_dir / CACHE_FOLDER

    def _file(self, name: str) -> Path:
        # One entry per dataset: a new profile of it replaces the old.
        return self._folder / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.json"

    def get(self, entry: DatasetEntry, key: str) -> CachedProfile | None:
        try:
            data = json.loads(self._file(entry.name).read_text())
            if not isinstance(data, dict) or data.get("key") != key:
                return None
            return CachedProfile(
                schema=DatasetSchema.model_validate(data["schema"]),
                row_count=int(data["row_count"]),
                mock_b64=str(data["mock_b64"]),
                lineage=str(data["lineage"]),
            )
        except (OSError, ValueError, KeyError, TypeError, ValidationError):
            return None

    def put(self, entry: DatasetEntry, key: str, profile: CachedProfile) -> None:
        """Write the entry whole (a temporary file renamed over the old), or not at all."""
        data = {
            "key": key,
            "schema": profile.schema.model_dump(mode="json"),
            "row_count": profile.row_count,
            "mock_b64": profile.mock_b64,
            "lineage": profile.lineage,
        }
        target = self._file(entry.name)
        temporary = target.with_suffix(".tmp")
        try:
            self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data))
            os.replace(temporary, target)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()
