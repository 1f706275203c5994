"""ingest (issue 4): packed online feature state; retention rollups

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``features_online`` keeps its window and baseline packed as columns in ``state``
(``ingest.window.OnlineState``) instead of the JSON ``recent`` and ``baseline``. Existing rows start
with no state: their next reading reads the device's timeline back from ``readings`` once and
recomputes the baseline from the device's first readings, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('features_online', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.LargeBinary(), nullable=True))
        batch_op.drop_column('recent')
        batch_op.drop_column('baseline')


def downgrade() -> None:
    with op.batch_alter_table('features_online', schema=None) as batch_op:
        batch_op.add_column(sa.Column('baseline', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('recent', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.drop_column('state')
