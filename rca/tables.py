"""The ``alert_rca`` table (owned by this package): the ranked causes stored with the alert.

One row per alert episode (fingerprint + startsAt), declared on the ground floor's
:data:`aiops.state.metadata`; the schema is made by the Alembic migration
``aiops/migrations/versions/0002_alert_rca.py``. Other packages read it only through
:func:`read_alert_rca` / :func:`latest_alert_rca` (the dashboard's read functions).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Column, Float, String, Table, Text, delete, insert, select

from aiops.state import StateDB, metadata
from aiops.timeutil import format_ts_ms
from rca.model import RcaResult

__all__ = ["alert_rca", "save_alert_rca", "read_alert_rca", "latest_alert_rca"]

alert_rca = Table(
    "alert_rca",
    metadata,
    Column("fingerprint", String(32), primary_key=True),
    Column("starts_at_ms", BigInteger, primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("symptom", Text, nullable=False),
    Column("onset_ms", BigInteger),
    Column("duration_s", Float, nullable=False),
    Column("causes", Text, nullable=False),  # JSON list, best first
    Column("error", Text),
)


def cause_records(result: RcaResult, workloads: dict[str, str | None] | None = None,
                  limit: int = 20) -> list[dict[str, Any]]:
    """The stored form of the best ``limit`` causes (with their evidence)."""
    out = []
    for c in result.causes[:limit]:
        rec = c.to_json()
        rec["onset"] = format_ts_ms(c.onset_ms) if c.onset_ms is not None else None
        rec["workload"] = (workloads or {}).get(c.component)
        out.append(rec)
    return out


def save_alert_rca(state: StateDB, fingerprint: str, starts_at_ms: int, created_ms: int, symptom: str,
                   causes: list[dict[str, Any]], onset_ms: int | None, duration_s: float,
                   error: str | None = None) -> None:
    """Store (replace) the causes of one alert episode."""
    key = (alert_rca.c.fingerprint == fingerprint) & (alert_rca.c.starts_at_ms == starts_at_ms)
    with state.begin() as conn:
        conn.execute(delete(alert_rca).where(key))
        conn.execute(insert(alert_rca).values(
            fingerprint=fingerprint, starts_at_ms=starts_at_ms, created_ms=created_ms, symptom=symptom,
            onset_ms=onset_ms, duration_s=duration_s, causes=json.dumps(causes), error=error))


def _row(r: Any) -> dict[str, Any]:
    return {"fingerprint": r.fingerprint, "starts_at_ms": int(r.starts_at_ms), "created_ms": int(r.created_ms),
            "symptom": r.symptom, "onset_ms": r.onset_ms, "duration_s": float(r.duration_s),
            "causes": json.loads(r.causes), "error": r.error}


def read_alert_rca(state: StateDB, fingerprint: str, starts_at_ms: int | None = None) -> dict[str, Any] | None:
    """The stored localisation of an alert: its latest episode, or the one starting at ``starts_at_ms``.

    This is the read function for the dashboard's alert page: ``causes`` is the ranked list
    (``component``, ``metric``, ``score``, ``z``, ``marginal_z``, ``onset``, ``path``,
    ``workload``), ``symptom`` the alerting ``component:metric``.
    """
    q = select(alert_rca).where(alert_rca.c.fingerprint == fingerprint)
    if starts_at_ms is not None:
        q = q.where(alert_rca.c.starts_at_ms == starts_at_ms)
    q = q.order_by(alert_rca.c.starts_at_ms.desc()).limit(1)
    with state.begin() as conn:
        row = conn.execute(q).first()
    return _row(row) if row is not None else None


def latest_alert_rca(state: StateDB, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent localisations, newest first."""
    q = select(alert_rca).order_by(alert_rca.c.created_ms.desc()).limit(limit)
    with state.begin() as conn:
        return [_row(r) for r in conn.execute(q)]
