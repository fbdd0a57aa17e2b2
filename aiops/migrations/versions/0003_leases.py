"""leases: named leases in the state DB (``aiops/state.py``; the rules leader of HA alerting).

Revision ID: 0003_leases
Revises: 0002_alert_rca
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_leases"
down_revision: str | None = "0002_alert_rca"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table('leases',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('owner', sa.String(length=256), nullable=False),
    sa.Column('until_ms', sa.BigInteger(), nullable=False),
    sa.Column('acquired_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('leases')
