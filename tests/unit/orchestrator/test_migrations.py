"""The migrations build exactly the schema the tables declare, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from custos.orchestrator.db import MIGRATIONS, Database, migrate
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


def _migrate_to(db: Database, revision: str, *, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, revision)


def _row(table: sa.Table, **values: object) -> dict[str, object]:
    """`values`, and a placeholder for every other column that may not be null."""
    now = datetime(2026, 11, 24, tzinfo=UTC)
    fill = {sa.String: "x", sa.Text: "x", sa.Integer: 0, sa.JSON: {}, sa.DateTime: now}
    row: dict[str, object] = {}
    for column in table.columns:
        if column.name in values or column.nullable or column.autoincrement is True:
            continue
        row[column.name] = next(v for t, v in fill.items() if isinstance(column.type, t))
    return row | values


def test_a_release_held_before_per_org_review_waits_for_every_org(database_url: str) -> None:
    """0012: a release of two orgs that needed two approvals from either needs two from each."""
    db = Database(database_url)
    try:
        _migrate_to(db, "0011")
        meta = sa.MetaData()
        meta.reflect(db.engine, only=["specs", "jobs", "releases", "release_reviews"])
        specs, jobs, releases, reviews = (
            meta.tables[t] for t in ("specs", "jobs", "releases", "release_reviews")
        )
        with db.engine.begin() as conn:
            conn.execute(specs.insert(), _row(specs, id="spec_1"))
            conn.execute(jobs.insert(), _row(jobs, id="job_1", spec_id="spec_1"))
            conn.execute(
                releases.insert(),
                _row(releases, id="rel_1", job_id="job_1", state="partially_reviewed", required=2,
                     orgs=["hospital-a", "hospital-b"]),
            )  # fmt: skip
            conn.execute(
                reviews.insert(),
                _row(reviews, release_id="rel_1", reviewer="admin-b", org="hospital-b", decision="approve"),
            )
        migrate(db.engine)
        with db.engine.connect() as conn:
            parts = conn.execute(sa.text("SELECT org, required FROM release_parts ORDER BY org")).all()
            required = conn.execute(sa.text("SELECT required FROM releases WHERE id = 'rel_1'")).scalar_one()
            votes = conn.execute(sa.text("SELECT count(*) FROM release_reviews")).scalar_one()
        assert ([tuple(p) for p in parts], required, votes) == ([("hospital-a", 2), ("hospital-b", 2)], 4, 1)
        _migrate_to(db, "0011", down=True)
        with db.engine.connect() as conn:
            required = conn.execute(sa.text("SELECT required FROM releases WHERE id = 'rel_1'")).scalar_one()
        assert required == 2
    finally:
        db.dispose()
