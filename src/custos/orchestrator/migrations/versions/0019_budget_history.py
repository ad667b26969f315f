"""budget history: each change of the budget mirror, with the job or ledger report that moved it

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dataset", sa.String(130), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("org", sa.String(64), nullable=False),
        sa.Column("dataset_org", sa.String(64), nullable=False),
        sa.Column("spent_epsilon", sa.Double(), nullable=False),
        sa.Column("spent_delta", sa.Double(), nullable=False),
        sa.Column("cap_epsilon", sa.Double(), nullable=False),
        sa.Column("cap_delta", sa.Double(), nullable=False),
        sa.Column("cause", sa.String(160), nullable=False),
    )
    op.create_index("ix_budget_history_at", "budget_history", ["at"])
    op.create_index("ix_budget_history_dataset", "budget_history", ["dataset"])


def downgrade() -> None:
    op.drop_index("ix_budget_history_dataset", "budget_history")
    op.drop_index("ix_budget_history_at", "budget_history")
    op.drop_table("budget_history")
