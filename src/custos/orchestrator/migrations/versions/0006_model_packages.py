"""model registry: signed model packages

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_packages",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("archive", sa.LargeBinary(), nullable=False),
        sa.Column("manifest_json", sa.JSON(), nullable=False),
        sa.Column("signer", sa.String(length=128), nullable=False),
        sa.Column("signer_org", sa.String(length=64), nullable=False),
        sa.Column("signer_certificate_pem", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=1024), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    op.create_index("ix_model_packages_digest", "model_packages", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_model_packages_digest", table_name="model_packages")
    op.drop_table("model_packages")
