"""ingest (issue 4): retention and rollups

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Reserved so that work on separate issues can add its schema changes without two Alembic heads.
Empty until that work lands.
"""

from __future__ import annotations

from collections.abc import Sequence


revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
