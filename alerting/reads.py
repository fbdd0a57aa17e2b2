"""Alerting's read API for other layers (the dashboard): alerts, their history, silences.

Plain functions over a :class:`~aiops.state.StateDB` that return rows as dicts (labels and
annotations already decoded), so a reader above never imports :mod:`alerting.tables` or builds
queries on them: the tables stay alerting's to change, with a migration, behind this module.
Errors are SQLAlchemy's; the caller decides how to show a missing or locked database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select

from aiops.state import StateDB
from alerting.tables import alert_events, alerts, silences

__all__ = ["EVENT_FILTERS", "alert_rows", "alerts_by_prefix", "event_rows", "silence_rows"]

EVENT_FILTERS = ("alertname", "severity", "state", "fingerprint")


def alert_rows(db: StateDB, *, resolved_since_ms: int) -> list[dict[str, Any]]:
    """Firing and pending alerts, and those resolved at or after ``resolved_since_ms``; newest first."""
    q = select(alerts).where(or_(alerts.c.state.in_(("firing", "pending")),
                                 (alerts.c.state == "resolved") & (alerts.c.ends_at_ms >= resolved_since_ms)))
    return _rows(db, q.order_by(alerts.c.starts_at_ms.desc()))


def alerts_by_prefix(db: StateDB, prefix: str, limit: int = 2) -> list[dict[str, Any]]:
    """Alerts whose fingerprint starts with ``prefix`` (what ``aiops rca --alert ABC`` names), at most ``limit``."""
    return _rows(db, select(alerts).where(alerts.c.fingerprint.startswith(prefix, autoescape=True)).limit(limit))


def event_rows(db: StateDB, *, since_ms: int = 0, until_ms: int | None = None,
               filters: Mapping[str, str] | None = None, oldest_first: bool = False,
               limit: int = 500) -> list[dict[str, Any]]:
    """Recorded state changes in ``[since_ms, until_ms]``, newest first unless ``oldest_first``.

    ``filters`` keeps rows whose column equals the value, for the columns in :data:`EVENT_FILTERS`;
    an empty value filters nothing.

    Raises:
        ValueError: a filter on another column.
    """
    q = select(alert_events).where(alert_events.c.ts_ms >= since_ms)
    if until_ms is not None:
        q = q.where(alert_events.c.ts_ms <= until_ms)
    for col, value in (filters or {}).items():
        if col not in EVENT_FILTERS:
            raise ValueError(f"alert events cannot be filtered by {col!r}; use one of {', '.join(EVENT_FILTERS)}")
        if value:
            q = q.where(alert_events.c[col] == value)
    order = alert_events.c.ts_ms.asc() if oldest_first else alert_events.c.ts_ms.desc()
    return _rows(db, q.order_by(order, alert_events.c.id.asc() if oldest_first else alert_events.c.id.desc())
                 .limit(limit))


def silence_rows(db: StateDB, limit: int = 500) -> list[dict[str, Any]]:
    """Silences as stored (matchers, times, author, comment), newest first."""
    return _rows(db, select(silences).order_by(silences.c.created_ms.desc()).limit(limit))


def _rows(db: StateDB, query: Any) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
