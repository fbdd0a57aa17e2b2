"""Remediation's table: one row per action run (its audit trail is the kernel's ``audit`` table).

Declared on the ground floor's :data:`aiops.state.metadata`; the schema itself is made by the
Alembic migrations in ``aiops/migrations/`` (every table change needs one, see docs/ARCHITECTURE.md).
No other package reads these tables: they ask through :class:`~remediation.runs.RunStore`.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Table, Text

from aiops.state import metadata

__all__ = ["action_runs"]


action_runs = Table(
    "action_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("playbook", String(256), nullable=False),
    Column("action", String(128), nullable=False),
    Column("step", Integer, nullable=False, default=0),
    Column("params", JSON, nullable=False),
    Column("alert_fingerprint", String(32), nullable=False),
    Column("idempotency_key", String(512), nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("started_ms", BigInteger, nullable=True),
    Column("finished_ms", BigInteger, nullable=True),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("approved_by", String(256), nullable=True),
    Column("dry_run", Integer, nullable=False, default=0),
    Column("extra", JSON, nullable=False, default=dict),
    # remediation: who executes the run now and until when (a dead worker's lease expires),
    # how many times it was attempted, and when a pending approval expires
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until_ms", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("expires_ms", BigInteger, nullable=True),
    Index("action_runs_by_time", "created_ms"),
    Index("action_runs_by_status", "status"),
    Index("action_runs_by_playbook", "playbook", "created_ms"),
)
