"""gateway health: the version and tasks in flight each gateway's heartbeat reports

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

`last_seen` was set at sign-in only; it now moves with every poll and heartbeat too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("version", sa.String(40), nullable=True))
        batch.add_column(sa.Column("tasks_in_flight", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("tasks_in_flight")
        batch.drop_column("version")
