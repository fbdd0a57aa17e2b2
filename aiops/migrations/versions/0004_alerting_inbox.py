"""alerting_inbox: what standby agents hand to the rules leader (``alerting/inbox.py``).

Revision ID: 0004_alerting_inbox
Revises: 0003_leases
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_alerting_inbox"
down_revision: str | None = "0003_leases"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table('alerting_inbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('items', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('sender', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('alerting_inbox')
