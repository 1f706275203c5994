"""case state remembers the prediction version

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:18:19.730516
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('case_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_prediction_n', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('case_state', schema=None) as batch_op:
        batch_op.drop_column('last_prediction_n')
