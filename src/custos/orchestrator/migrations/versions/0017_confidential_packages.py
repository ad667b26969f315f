"""confidential packages: a sealed archive's signed terms (plaintext digest, key id, broker, measurements)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

A row with terms holds ciphertext in `archive`, and `digest` is the ciphertext's; the orchestrator
has no key to decrypt it (docs/confidential.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_packages", sa.Column("confidential_json", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("model_packages", "confidential_json")
