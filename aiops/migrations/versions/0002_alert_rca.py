"""alert_rca: the ranked root causes stored with each alert episode (owned by ``rca/tables.py``).

Revision ID: 0002_alert_rca
Revises: 0001_baseline
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_alert_rca"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table('alert_rca',
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('starts_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('symptom', sa.Text(), nullable=False),
    sa.Column('onset_ms', sa.BigInteger(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('causes', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('fingerprint', 'starts_at_ms')
    )


def downgrade() -> None:
    op.drop_table('alert_rca')
