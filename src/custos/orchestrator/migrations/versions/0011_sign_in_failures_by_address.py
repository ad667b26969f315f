"""failed sign-ins counted per client address (and per account for passwords), not per identity

The table is rebuilt rather than altered: its rows are failures of the last fifteen minutes, counted
against accounts, which the new limits do not count against; losing them only restarts the count.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _create(index: str, key_columns: list[sa.Column[str]]) -> None:
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *key_columns,
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    columns = [c.name for c in key_columns]
    with op.batch_alter_table("sign_in_failures", schema=None) as batch_op:
        batch_op.create_index(index, [*columns, "method", "at"], unique=False)


def _drop(index: str) -> None:
    with op.batch_alter_table("sign_in_failures", schema=None) as batch_op:
        batch_op.drop_index(index)
    op.drop_table("sign_in_failures")


def upgrade() -> None:
    _drop("ix_sign_in_failures_account")
    _create(
        "ix_sign_in_failures_key",
        [
            sa.Column("scope", sa.String(length=16), nullable=False),
            sa.Column("key", sa.String(length=128), nullable=False),
        ],
    )


def downgrade() -> None:
    _drop("ix_sign_in_failures_key")
    _create("ix_sign_in_failures_account", [sa.Column("account", sa.String(length=128), nullable=False)])
