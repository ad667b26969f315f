"""Shared fixtures: databases. PostgreSQL tests skip with a reason when no server is reachable."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("CUSTOS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin() -> object | None:
    try:
        import psycopg

        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception:
        return None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    import psycopg

    conn = _pg_admin()
    if conn is None:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    assert isinstance(conn, psycopg.Connection)
    name = f"custos_test_{secrets.token_hex(4)}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        try:
            base = PG_ADMIN_URL.rsplit("/", 1)[0]
            yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Each database the orchestrator supports: the same tests run against both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'orchestrator.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
