"""device security (issue 4): revoked device credentials

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

``device_revocations`` lists the devices whose credentials ``foresight devices revoke`` withdrew;
the ingester dead-letters whatever still arrives from them (reason ``revoked_device``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'device_revocations',
        sa.Column('device_id', sa.String(length=64), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('device_id'),
    )


def downgrade() -> None:
    op.drop_table('device_revocations')
