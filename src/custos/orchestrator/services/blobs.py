"""A job's blobs: the bytes behind the references in its tasks, state and result.

The bytes are in a `BlobStore` (services/blob_stores.py): files under the orchestrator's blob folder
on one host (because a 40 MB row costs SQLite ten to twenty times what a file write costs, every
round), or rows of the shared database when several orchestrator hosts serve one PostgreSQL database.
The database keeps the index (`blobs`: job, digest, size). The bytes are stored before the row that
names them, so a row never names missing bytes; bytes whose row was rolled back are removed with
their job's other unreferenced blobs.
A blob goes when nothing of its job refers to it any more: while the job runs, only its state and its
current round's inputs and results keep theirs; once it ends, only its result's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from custos.core.blobs import Blobs, externalize, internalize, refs_in
from custos.core.errors import NotFound
from custos.core.states import JobState
from custos.orchestrator.services.blob_stores import BlobStore
from custos.orchestrator.tables import Blob, Job, Result, Task


class JobBlobs:
    """A job's blobs: their index rows here, their bytes in `store`."""

    def __init__(self, store: BlobStore) -> None:
        self._bytes = store

    def store(self, session: Session, job_id: str, blobs: Blobs, now: datetime) -> None:
        """Keep `blobs` for the job; one it already has is not written again."""
        if not blobs:
            return
        have = set(
            session.execute(select(Blob.digest).where(Blob.job_id == job_id, Blob.digest.in_(list(blobs))))
            .scalars()
            .all()
        )
        for digest, data in blobs.items():
            if digest in have:
                continue
            self._bytes.put(session, job_id, digest, data)
            session.add(Blob(job_id=job_id, digest=digest, size=len(data), created_at=now))
        session.flush()

    def externalize_into(self, session: Session, job_id: str, value: Any, now: datetime) -> Any:
        """`value` as JSON with its bytes stored as the job's blobs."""
        message, blobs = externalize(value)
        self.store(session, job_id, blobs, now)
        return message

    def read(self, session: Session, job_id: str, digest: str) -> bytes:
        row = session.get(Blob, (job_id, digest))
        data = None if row is None else self._bytes.get(session, job_id, digest)
        if data is None:
            raise NotFound(f"job {job_id} has no blob {digest}")
        return data

    def missing(self, session: Session, job_id: str, digests: Iterable[str]) -> list[str]:
        wanted = set(digests)
        if not wanted:
            return []
        have = set(
            session.execute(select(Blob.digest).where(Blob.job_id == job_id, Blob.digest.in_(list(wanted))))
            .scalars()
            .all()
        )
        return sorted(wanted - have)

    def internalize_from(self, session: Session, job_id: str, value: Any) -> Any:
        """`value` with its references replaced by the job's blobs (checked against their digests when
        they were stored)."""
        return internalize(value, lambda digest, _size: self.read(session, job_id, digest), check=False)

    def collect_garbage(self, session: Session, job: Job) -> None:
        """Drop the job's blobs that nothing of the job refers to any more."""
        result = session.get(Result, job.id)
        keep = set(refs_in(result.result)) if result is not None else set()
        if job.state == JobState.RUNNING:
            keep.update(refs_in(job.model_state))
            tasks = session.execute(select(Task).where(Task.job_id == job.id, Task.round == job.round))
            for task in tasks.scalars():
                keep.update(refs_in(task.round_input))
                keep.update(refs_in(task.result))
        unwanted = select(Blob.digest).where(Blob.job_id == job.id, Blob.digest.not_in(keep))
        gone = list(session.execute(unwanted).scalars())
        session.execute(delete(Blob).where(Blob.job_id == job.id, Blob.digest.in_(gone)))
        ended = job.state != JobState.RUNNING
        self._bytes.remove(session, job.id, gone, whole_job=ended and not keep)
