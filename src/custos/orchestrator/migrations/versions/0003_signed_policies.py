"""signed policies, the certificate revocation list, and certificate serials for revocation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Policies published before signing existed cannot be verified, so the table is rebuilt empty: gateways
publish their signed policies again when they next start, and org admins push theirs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("users", "auth_tokens"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("cert_serial", sa.String(length=64), nullable=True))
    op.drop_table("policies")
    op.create_table(
        "policies",
        sa.Column("dataset_id", sa.String(length=130), nullable=False),
        sa.Column("policy_yaml", sa.Text(), nullable=False),
        sa.Column("signed_json", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signer", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id"),
    )
    op.create_table(
        "revocation_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("crl_pem", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    for table in ("users", "auth_tokens"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("cert_serial")
    op.drop_table("revocation_lists")
    op.drop_table("policies")
    op.create_table(
        "policies",
        sa.Column("dataset_id", sa.String(length=130), nullable=False),
        sa.Column("policy_yaml", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id"),
    )
