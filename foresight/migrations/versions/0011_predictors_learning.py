"""predictors: retrain and evaluation (issue 3)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Reserved so that work on separate issues can add its schema changes without two Alembic heads.
Empty until that work lands.
"""

from __future__ import annotations

from collections.abc import Sequence


revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
