"""Remediation's read API for other layers (the dashboard): action runs as rows.

Like :mod:`alerting.reads`: functions over a :class:`~aiops.state.StateDB` returning dicts, so
no reader above imports :mod:`remediation.tables`. Secrets in parameters and results are the
caller's to mask for display (:func:`aiops.secretref.mask_secrets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from aiops.state import StateDB
from remediation.tables import action_runs

__all__ = ["run_ids_by_prefix", "run_rows"]


def run_rows(db: StateDB, *, status: Sequence[str] = (), fingerprint: str = "", run_id: str = "",
             since_ms: int = 0, limit: int = 300) -> list[dict[str, Any]]:
    """Action runs created at or after ``since_ms``, newest first, optionally by status, alert or id."""
    q = select(action_runs).where(action_runs.c.created_ms >= since_ms)
    if status:
        q = q.where(action_runs.c.status.in_(tuple(status)))
    if fingerprint:
        q = q.where(action_runs.c.alert_fingerprint == fingerprint)
    if run_id:
        q = q.where(action_runs.c.id == run_id)
    q = q.order_by(action_runs.c.created_ms.desc(), action_runs.c.step.desc()).limit(limit)
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def run_ids_by_prefix(db: StateDB, prefix: str, limit: int = 2) -> list[str]:
    """Ids of runs starting with ``prefix`` (what ``aiops approve ABC`` names), at most ``limit``.

    A range on the primary key, so the database finds the prefix and no run is decoded (ids are
    hex: ``~`` sorts after every id that starts with the prefix).
    """
    q = select(action_runs.c.id).where(action_runs.c.id >= prefix, action_runs.c.id < prefix + "~").limit(limit)
    with db.engine.connect() as conn:
        return [str(r[0]) for r in conn.execute(q)]
