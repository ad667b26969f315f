"""privacy budget mirror: what each researcher and org has spent per dataset, for display

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_mirror",
        sa.Column("dataset", sa.String(length=130), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("dataset_org", sa.String(length=64), nullable=False),
        sa.Column("spent_epsilon", sa.Double(), nullable=False),
        sa.Column("spent_delta", sa.Double(), nullable=False),
        sa.Column("cap_epsilon", sa.Double(), nullable=False),
        sa.Column("cap_delta", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dataset", "kind", "subject"),
    )
    op.create_index("ix_budget_mirror_org", "budget_mirror", ["org"])
    op.create_index("ix_budget_mirror_dataset_org", "budget_mirror", ["dataset_org"])


def downgrade() -> None:
    op.drop_index("ix_budget_mirror_dataset_org", table_name="budget_mirror")
    op.drop_index("ix_budget_mirror_org", table_name="budget_mirror")
    op.drop_table("budget_mirror")
