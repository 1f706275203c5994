"""ingest (issue 4): packed online feature state; retention rollups

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``features_online`` keeps its window and baseline packed as columns in ``state``
(``ingest.window.OnlineState``) instead of the JSON ``recent`` and ``baseline``. Existing rows start
with no state: their next reading reads the device's timeline back from ``readings`` once and
recomputes the baseline from the device's first readings, so nothing is lost.

``readings_daily`` holds readings past the retention window, per device, UTC day and metric.
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
    op.create_table(
        'readings_daily',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('device_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('metric', sa.String(length=64), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('min', sa.Float(), nullable=False),
        sa.Column('max', sa.Float(), nullable=False),
        sa.Column('total', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('device_id', 'day', 'metric', name='uq_readings_daily_device_day_metric'),
    )
    with op.batch_alter_table('readings_daily', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_readings_daily_device_id'), ['device_id'], unique=False)
    with op.batch_alter_table('features_online', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.LargeBinary(), nullable=True))
        batch_op.drop_column('recent')
        batch_op.drop_column('baseline')


def downgrade() -> None:
    with op.batch_alter_table('readings_daily', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_readings_daily_device_id'))
    op.drop_table('readings_daily')
    with op.batch_alter_table('features_online', schema=None) as batch_op:
        batch_op.add_column(sa.Column('baseline', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('recent', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.drop_column('state')
