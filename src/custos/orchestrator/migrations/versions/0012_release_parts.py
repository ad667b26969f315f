"""release review per org: each contributing org approves its own part of a held result

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25

A release held before this revision needed `required` approvals from the reviewers of any of its
orgs. It now needs that many from each of them: every org of a release gets a part with the old
number, and the release's `required` becomes their sum. A release still open when the orchestrator is
upgraded therefore waits for every org; one that had ended keeps its state.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

releases = sa.table(
    "releases",
    sa.column("id", sa.String()),
    sa.column("required", sa.Integer()),
    sa.column("orgs", sa.JSON()),
)


def upgrade() -> None:
    parts = op.create_table(
        "release_parts",
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("required", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"]),
        sa.PrimaryKeyConstraint("release_id", "org"),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(releases.c.id, releases.c.required, releases.c.orgs)).all():
        rows = [{"release_id": row.id, "org": org, "required": row.required} for org in row.orgs]
        if rows:
            conn.execute(parts.insert(), rows)
        conn.execute(
            releases.update().where(releases.c.id == row.id).values(required=row.required * len(rows))
        )


def downgrade() -> None:
    conn = op.get_bind()
    parts = sa.table(
        "release_parts", sa.column("release_id", sa.String()), sa.column("required", sa.Integer())
    )
    strictest = (
        sa.select(sa.func.max(parts.c.required)).where(parts.c.release_id == releases.c.id).scalar_subquery()
    )
    conn.execute(releases.update().values(required=sa.func.coalesce(strictest, releases.c.required)))
    op.drop_table("release_parts")
