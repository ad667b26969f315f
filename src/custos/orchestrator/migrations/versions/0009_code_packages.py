"""custom code submitted as a package: the deterministic archive a code request's digest binds

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("code_requests", sa.Column("archive", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("code_requests", "archive")
