"""One contract suite for every `BlobStore` (services/blob_stores.py): the folder and the database
store, the latter on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from custos.orchestrator.db import Database, migrate
from custos.orchestrator.services.blob_stores import BlobStore, DatabaseBlobStore, FolderBlobStore

A, B = "a" * 64, "b" * 64


@pytest.fixture(params=["folder", "database"])
def store_and_db(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[tuple[BlobStore, Database]]:
    db = Database(database_url)
    migrate(db.engine)
    store: BlobStore = (
        FolderBlobStore(tmp_path / "blobs") if request.param == "folder" else DatabaseBlobStore()
    )
    try:
        yield store, db
    finally:
        db.dispose()


def test_what_is_put_is_got_back_in_a_later_transaction_and_a_second_put_keeps_it(
    store_and_db: tuple[BlobStore, Database],
) -> None:
    store, db = store_and_db
    with db.session() as s:
        store.put(s, "job-1", A, b"weights")
        store.put(s, "job-1", A, b"weights")
    with db.session() as s:
        assert store.get(s, "job-1", A) == b"weights"
        assert store.get(s, "job-2", A) is None, "blobs are the job's own"
        assert store.get(s, "job-1", B) is None


def test_a_removal_counts_only_once_committed(store_and_db: tuple[BlobStore, Database]) -> None:
    store, db = store_and_db
    with db.session() as s:
        store.put(s, "job-1", A, b"one")
        store.put(s, "job-1", B, b"two")
    with pytest.raises(RuntimeError), db.session() as s:
        store.remove(s, "job-1", [A], whole_job=False)
        raise RuntimeError("rolled back")
    with db.session() as s:
        assert store.get(s, "job-1", A) == b"one", "a rolled-back removal loses nothing"
    with db.session() as s:
        store.remove(s, "job-1", [A], whole_job=False)
    with db.session() as s:
        assert store.get(s, "job-1", A) is None
        assert store.get(s, "job-1", B) == b"two"
    with db.session() as s:
        store.remove(s, "job-1", [], whole_job=True)
    with db.session() as s:
        assert store.get(s, "job-1", B) is None


def test_the_bytes_of_a_rolled_back_put_go_with_their_job(store_and_db: tuple[BlobStore, Database]) -> None:
    store, db = store_and_db
    with pytest.raises(RuntimeError), db.session() as s:
        store.put(s, "job-1", A, b"orphan")
        raise RuntimeError("rolled back")
    with db.session() as s:
        store.remove(s, "job-1", [], whole_job=True)
    with db.session() as s:
        assert store.get(s, "job-1", A) is None
