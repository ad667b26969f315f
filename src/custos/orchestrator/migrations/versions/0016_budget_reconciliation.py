"""budget reconciliation: the head of each gateway's ledger and when the mirror was reconciled to it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("ledger_head", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("ledger_reported_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("ledger_reported_at")
        batch.drop_column("ledger_head")
