"""The rules leader's inbox in the state DB: what standby agents hand over for evaluation.

Only the agent holding the rules lease evaluates rules (docs/ha.md). Two inputs reach any
agent, though: anomalies its own detection shard found (``detect.sharding``), and alerts
posted to its intake webhook (a Service in front of the agents picks either). A standby
writes them here, one row per batch; the leader reads the rows in order, applies them as if
they had arrived on its own bus or webhook, and only then deletes them. A leader that dies
in between leaves the rows to its successor, which applies them again: harmless, since an
anomaly point is keyed by its timestamp and an external alert that did not change its state
changes nothing. Rows no agent took within ``max_age_ms`` (no leader for that long) are
dropped, counted in the log.

Examples:
    >>> from aiops.state import StateDB
    >>> from aiops.model import Alert
    >>> db = StateDB("sqlite://"); db.create_all()
    >>> box = Inbox(db, sender="agent-b")
    >>> box.put_external([Alert.of({"alertname": "Up"}, starts_at_ms=1000)], "alertmanager", now_ms=2000)
    >>> [(e.kind, e.alerts[0].name) for e in box.take(now_ms=2500)]
    [('external', 'Up')]
    >>> box.done([e.id for e in box.take(now_ms=2500)]); box.take(now_ms=2500)
    []
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select

from aiops.logs import get_logger
from aiops.model import Alert, AlertState, Anomaly, Series, now_ms
from aiops.state import StateDB
from alerting.tables import alerting_inbox

__all__ = ["Inbox", "InboxEntry"]

log = get_logger("alerting.inbox")

ANOMALIES = "anomalies"
EXTERNAL = "external"
_TAKE_ROWS = 200  # rows per read: a backlog drains over a few polls, never in one long lock


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One handed-over batch: anomalies, or alerts posted from outside (with their source)."""

    id: int
    kind: str
    created_ms: int
    source: str = ""
    anomalies: tuple[Anomaly, ...] = ()
    alerts: tuple[Alert, ...] = field(default=())


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _anomaly_json(a: Anomaly) -> dict[str, Any]:
    return {"name": a.series.name, "labels": [list(p) for p in a.series.labels], "ts_ms": a.ts_ms,
            "value": _num(a.value), "score": float(a.score), "detector": a.detector,
            "threshold": float(a.threshold), "expected": _num(a.expected), "lower": _num(a.lower),
            "upper": _num(a.upper)}


def _anomaly(d: dict[str, Any]) -> Anomaly:
    series = Series(str(d["name"]), tuple((str(k), str(v)) for k, v in d["labels"]))
    value = d.get("value")
    return Anomaly(series, int(d["ts_ms"]), float("nan") if value is None else float(value), float(d["score"]),
                   str(d["detector"]), float(d["threshold"]), d.get("expected"), d.get("lower"), d.get("upper"))


def _alert_json(a: Alert) -> dict[str, Any]:
    return {"labels": dict(a.labels), "annotations": dict(a.annotations), "state": a.state.value,
            "starts_at_ms": a.starts_at_ms, "ends_at_ms": a.ends_at_ms, "value": _num(a.value),
            "generator_url": a.generator_url}


def _alert(d: dict[str, Any]) -> Alert:
    return Alert.of(d["labels"], d["annotations"], state=AlertState(d["state"]),
                    starts_at_ms=int(d["starts_at_ms"]), ends_at_ms=int(d["ends_at_ms"]),
                    value=d.get("value"), generator_url=str(d.get("generator_url") or ""))


class Inbox:
    """Reads and writes ``alerting_inbox``.

    Args:
        db: the state database the agents share.
        sender: this agent's id, recorded with each row (for the log).
        max_age_ms: rows older than this when read are dropped instead of applied.
    """

    def __init__(self, db: StateDB, sender: str = "", max_age_ms: int = 600_000) -> None:
        self.db = db
        self.sender = sender[:256]
        self.max_age_ms = max_age_ms

    def put_anomalies(self, found: Sequence[Anomaly], now_ms: int | None = None) -> None:
        """Hand anomalies found on this (standby) agent's shard to the leader."""
        if found:
            self._put(ANOMALIES, "", [_anomaly_json(a) for a in found], now_ms)

    def put_external(self, alerts: Sequence[Alert], source: str, now_ms: int | None = None) -> None:
        """Hand alerts posted to this (standby) agent's webhook to the leader."""
        if alerts:
            self._put(EXTERNAL, source, [_alert_json(a) for a in alerts], now_ms)

    def _put(self, kind: str, source: str, payload: list[dict[str, Any]], ts: int | None) -> None:
        with self.db.begin() as conn:
            conn.execute(insert(alerting_inbox).values(
                kind=kind, source=source[:64], items=len(payload), payload=payload,
                created_ms=now_ms() if ts is None else ts, sender=self.sender))

    def take(self, now_ms: int, limit: int = _TAKE_ROWS) -> list[InboxEntry]:
        """The oldest rows, in order (not removed: call :meth:`done` once they are applied).

        Rows older than ``max_age_ms`` are deleted here and not returned.
        """
        t = alerting_inbox
        with self.db.begin() as conn:
            stale = conn.execute(delete(t).where(t.c.created_ms < now_ms - self.max_age_ms)).rowcount
            rows = conn.execute(select(t).order_by(t.c.id).limit(limit)).all()
        if stale:
            log.warning("alert_inbox_expired", rows=stale)
        out = []
        for r in rows:
            items = r.payload or []
            if r.kind == ANOMALIES:
                out.append(InboxEntry(int(r.id), ANOMALIES, int(r.created_ms),
                                      anomalies=tuple(_anomaly(d) for d in items)))
            else:
                out.append(InboxEntry(int(r.id), EXTERNAL, int(r.created_ms), source=str(r.source),
                                      alerts=tuple(_alert(d) for d in items)))
        return out

    def done(self, ids: Sequence[int]) -> None:
        """Remove rows the leader applied."""
        if ids:
            with self.db.begin() as conn:
                conn.execute(delete(alerting_inbox).where(alerting_inbox.c.id.in_(list(ids))))

    def pending_external(self) -> int:
        """Posted alerts waiting for the leader (the intake's bound counts them)."""
        with self.db.begin() as conn:
            n = conn.execute(select(func.coalesce(func.sum(alerting_inbox.c["items"]), 0))
                             .where(alerting_inbox.c.kind == EXTERNAL)).scalar()
        return int(n or 0)
