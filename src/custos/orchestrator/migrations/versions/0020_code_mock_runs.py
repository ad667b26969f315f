"""a code request's mock run: the author's run of the code on the mock tables, for its reviewers

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("code_requests", sa.Column("mock_run", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("code_requests", "mock_run")
