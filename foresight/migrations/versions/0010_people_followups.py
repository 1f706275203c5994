"""people-in-the-loop follow-ups (issue 5): who resolved a ticket, who completed or cancelled a visit

``tickets.resolved_by``, ``bookings.completed_by`` and ``bookings.cancelled_by`` hold the signed-in
user's id (NULL for rows written before this revision, by automation or by a script).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without defaults: SQLite and PostgreSQL add them without rewriting the table.
    op.add_column('tickets', sa.Column('resolved_by', sa.String(length=64), nullable=True))
    op.add_column('bookings', sa.Column('completed_by', sa.String(length=64), nullable=True))
    op.add_column('bookings', sa.Column('cancelled_by', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_column('cancelled_by')
        batch_op.drop_column('completed_by')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('resolved_by')
