"""The migrations build exactly the schema the tables declare, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from custos.orchestrator.db import Database, migrate
from custos.orchestrator.tables import Base


def test_migrations_match_the_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        migrate(db.engine)
        migrate(db.engine)  # running again is a no-op
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        db.dispose()
