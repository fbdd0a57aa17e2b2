"""Baseline: the state database of aiops 0.1.0 (made by ``metadata.create_all`` before Alembic).

A database written by that release has these tables and no ``alembic_version``;
:meth:`aiops.state.StateDB.upgrade` stamps it at this revision instead of creating them again.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table('action_runs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('playbook', sa.String(length=256), nullable=False),
    sa.Column('action', sa.String(length=128), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('alert_fingerprint', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=512), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('started_ms', sa.BigInteger(), nullable=True),
    sa.Column('finished_ms', sa.BigInteger(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('approved_by', sa.String(length=256), nullable=True),
    sa.Column('dry_run', sa.Integer(), nullable=False),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_until_ms', sa.BigInteger(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('expires_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('action_runs_by_playbook', 'action_runs', ['playbook', 'created_ms'], unique=False)
    op.create_index('action_runs_by_status', 'action_runs', ['status'], unique=False)
    op.create_index('action_runs_by_time', 'action_runs', ['created_ms'], unique=False)
    op.create_table('alert_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('rule', sa.String(length=256), nullable=False),
    sa.Column('alertname', sa.String(length=256), nullable=False),
    sa.Column('severity', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('annotations', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('ts_ms', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('silenced_by', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('alert_events_by_fp', 'alert_events', ['fingerprint', 'ts_ms'], unique=False)
    op.create_index('alert_events_by_time', 'alert_events', ['ts_ms'], unique=False)
    op.create_table('alerts',
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('rule', sa.String(length=256), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('annotations', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('starts_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('ends_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('active_since_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_eval_ms', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint')
    )
    op.create_table('anomalies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('series', sa.Text(), nullable=False),
    sa.Column('ts_ms', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('detector', sa.String(length=128), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('expected', sa.Float(), nullable=True),
    sa.Column('lower', sa.Float(), nullable=True),
    sa.Column('upper', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('anomalies_by_series', 'anomalies', ['series', 'ts_ms'], unique=False)
    op.create_index('anomalies_by_time', 'anomalies', ['ts_ms'], unique=False)
    op.create_table('audit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('ts_ms', sa.BigInteger(), nullable=False),
    sa.Column('action_run_id', sa.String(length=64), nullable=True),
    sa.Column('playbook', sa.String(length=256), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=256), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('audit_by_run', 'audit', ['action_run_id'], unique=False)
    op.create_index('audit_by_time', 'audit', ['ts_ms'], unique=False)
    op.create_table('idempotency_keys',
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('kv',
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('receiver', sa.String(length=256), nullable=False),
    sa.Column('group_key', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_ms', sa.BigInteger(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('sent_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_until_ms', sa.BigInteger(), nullable=True),
    sa.Column('held_back', sa.Integer(), nullable=False),
    sa.Column('merged_into', sa.Integer(), nullable=True),
    sa.Column('updated_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('outbox_due', 'outbox', ['status', 'next_attempt_ms'], unique=False)
    op.create_index('outbox_lane', 'outbox', ['receiver', 'status', 'next_attempt_ms'], unique=False)
    op.create_index('outbox_merged', 'outbox', ['merged_into'], unique=False)
    op.create_table('silences',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('matchers', sa.JSON(), nullable=False),
    sa.Column('starts_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('ends_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('expired_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('silences')
    op.drop_table('outbox')
    op.drop_table('kv')
    op.drop_table('idempotency_keys')
    op.drop_table('audit')
    op.drop_table('anomalies')
    op.drop_table('alerts')
    op.drop_table('alert_events')
    op.drop_table('action_runs')
