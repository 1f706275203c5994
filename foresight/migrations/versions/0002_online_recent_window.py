"""online features keep the latest window

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:10:08.107318
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows start with an empty window; their next reading takes the read-back path once.
    with op.batch_alter_table('features_online', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recent', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table('features_online', schema=None) as batch_op:
        batch_op.drop_column('recent')
