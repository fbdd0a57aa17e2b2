"""Alerting's tables: the current state of each alert, every state change, silences, and the
inbox through which standby agents hand anomalies and posted alerts to the rules leader.

Declared on the ground floor's :data:`aiops.state.metadata`; the schema itself is made by the
Alembic migrations in ``aiops/migrations/`` (every table change needs one, see docs/ARCHITECTURE.md).
No other package reads these tables: they ask through alerting's read APIs
(:mod:`alerting.reads` for the dashboard, :class:`~alerting.history.AlertHistory`,
:class:`~alerting.silences.SilenceStore`) or through the
kernel's :class:`~aiops.contracts.AlertStates` contract, which alerting implements.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table, Text

from aiops.state import metadata

__all__ = ["alerts", "alert_events", "silences", "alerting_inbox"]


alerts = Table(  # the current state of each alert, one row per fingerprint
    "alerts",
    metadata,
    Column("fingerprint", String(32), primary_key=True),
    Column("rule", String(256), nullable=False, default=""),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("starts_at_ms", BigInteger, nullable=False),
    Column("ends_at_ms", BigInteger, nullable=False, default=0),
    Column("active_since_ms", BigInteger, nullable=True),
    Column("last_eval_ms", BigInteger, nullable=False, default=0),
    Column("value", Float, nullable=True),
    Column("source", String(64), nullable=False, default="rule"),
    Column("extra", JSON, nullable=False, default=dict),
)

alert_events = Table(  # every state change, kept long after the alert resolved
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(32), nullable=False),
    Column("rule", String(256), nullable=False, default=""),
    Column("alertname", String(256), nullable=False, default=""),
    Column("severity", String(64), nullable=False, default=""),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("value", Float, nullable=True),
    Column("silenced_by", String(64), nullable=True),
    Column("note", Text, nullable=True),
    Index("alert_events_by_time", "ts_ms"),
    Index("alert_events_by_fp", "fingerprint", "ts_ms"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at_ms", BigInteger, nullable=False),
    Column("ends_at_ms", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("created_ms", BigInteger, nullable=False),
    Column("expired_ms", BigInteger, nullable=True),
)

alerting_inbox = Table(  # what a standby agent hands to the rules leader (alerting/inbox.py)
    "alerting_inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # "anomalies" | "external"
    Column("source", String(64), nullable=False, default=""),
    Column("items", Integer, nullable=False),  # entries in payload (bounds the external intake)
    Column("payload", JSON, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("sender", String(256), nullable=False, default=""),
)
