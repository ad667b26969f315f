"""Where the bytes of a job's blobs live: the `BlobStore` seam and its two stores.

- `FolderBlobStore`: a file per (job, digest) under one folder; for a single orchestrator host (its
  workers share the folder), and cheapest for large blobs on SQLite.
- `DatabaseBlobStore`: a `blob_bytes` row per (job, digest) in the orchestrator's database; every
  orchestrator process on one PostgreSQL database reaches every blob, and nothing is on local disk.

The index of blobs (`blobs` rows) is kept by `JobBlobs` (services/blobs.py) in either case.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session

from custos.core.ids import new_id
from custos.orchestrator.tables import BlobBytes


class BlobStore(Protocol):
    """The bytes of a job's blobs. Every method runs in the caller's transaction (`session`).

    What MUST hold:
    - `put` then `get` in the same or a later committed transaction returns the same bytes; a `put` of
      a (job, digest) already stored leaves it as it is (the digest names the bytes).
    - `get` of bytes never stored, or removed, returns None.
    - `remove` takes effect only if the transaction commits: a rolled-back removal loses nothing.
    - The bytes of a rolled-back `put` are at worst left over, and `remove(..., whole_job=True)` of
      their job takes them too.
    """

    def put(self, session: Session, job_id: str, digest: str, data: bytes) -> None: ...

    def get(self, session: Session, job_id: str, digest: str) -> bytes | None: ...

    def remove(self, session: Session, job_id: str, digests: Collection[str], *, whole_job: bool) -> None:
        """Remove the job's blobs `digests`; with `whole_job`, every blob of the job."""
        ...


class FolderBlobStore:
    """A file per blob: `root/<job>/<digest>`, written atomically (a temporary name, then a rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, job_id: str) -> Path:
        return self.root / job_id

    def put(self, session: Session, job_id: str, digest: str, data: bytes) -> None:
        folder = self._folder(job_id)
        if (folder / digest).is_file():
            return
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = folder / f"{digest}.{new_id('part')}"
        partial.write_bytes(data)
        os.replace(partial, folder / digest)

    def get(self, session: Session, job_id: str, digest: str) -> bytes | None:
        path = self._folder(job_id) / digest
        return path.read_bytes() if path.is_file() else None

    def remove(self, session: Session, job_id: str, digests: Collection[str], *, whole_job: bool) -> None:
        folder = self._folder(job_id)
        gone = list(digests)

        def remove_files(_session: Session) -> None:  # only once the rows are gone for good
            if whole_job:
                shutil.rmtree(folder, ignore_errors=True)  # with any file a crash left half-written
                return
            for digest in gone:
                (folder / digest).unlink(missing_ok=True)

        orm_event.listen(session, "after_commit", remove_files, once=True)


class DatabaseBlobStore:
    """A `blob_bytes` row per blob, in the orchestrator's database: shared by all its processes."""

    def put(self, session: Session, job_id: str, digest: str, data: bytes) -> None:
        if session.get(BlobBytes, (job_id, digest)) is None:
            session.add(BlobBytes(job_id=job_id, digest=digest, data=data))
            session.flush()

    def get(self, session: Session, job_id: str, digest: str) -> bytes | None:
        row = session.get(BlobBytes, (job_id, digest))
        return None if row is None else row.data

    def remove(self, session: Session, job_id: str, digests: Collection[str], *, whole_job: bool) -> None:
        gone = delete(BlobBytes).where(BlobBytes.job_id == job_id)
        if not whole_job:
            gone = gone.where(BlobBytes.digest.in_(list(digests)))
        session.execute(gone)
