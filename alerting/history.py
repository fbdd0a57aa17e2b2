"""Alert history in the state DB: the current row per alert and every state change.

``alerts`` holds one row per fingerprint (its latest state); ``alert_events`` one row per
change, with the silence that muted it, kept long after the alert resolved. ``aiops alerts``
and ``GET /api/v1/alerts?history=1`` query it. Writes are batched: one transaction per
evaluation, whatever the number of changes.

Examples:
    >>> from aiops.state import StateDB
    >>> from aiops.model import Alert, AlertState
    >>> db = StateDB("sqlite://"); db.create_all()
    >>> h = AlertHistory(db)
    >>> a = Alert.of({"alertname": "HighCPU", "instance": "a"}, state=AlertState.FIRING, starts_at_ms=1000)
    >>> h.record([Event("HighCPU", a, ts_ms=1000)])
    1
    >>> [(e["alertname"], e["state"]) for e in h.query(name="HighCPU")]
    [('HighCPU', 'firing')]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from aiops.contracts import provide_alert_states
from aiops.model import Alert, AlertState
from aiops.state import StateDB, json_safe
from alerting.matchers import fingerprint
from alerting.tables import alert_events, alerts

__all__ = ["AlertHistory", "Event"]

_CHUNK = 500  # fingerprints per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True, slots=True)
class Event:
    """One state change to record."""

    rule: str
    alert: Alert
    ts_ms: int
    silenced_by: str | None = None
    note: str | None = None
    source: str = "rule"


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


class AlertHistory:
    """Reads and writes the ``alerts`` and ``alert_events`` tables."""

    def __init__(self, db: StateDB) -> None:
        self.db = db

    def firing_since_ms(self, fingerprint: str) -> int | None:
        """:class:`aiops.contracts.AlertStates`: ``startsAt`` of the alert's firing episode, or None."""
        with self.db.begin() as conn:
            row = conn.execute(select(alerts.c.state, alerts.c.starts_at_ms)
                               .where(alerts.c.fingerprint == fingerprint)).first()
        return int(row[1]) if row is not None and row[0] == AlertState.FIRING.value else None

    def episode(self, fingerprint: str) -> tuple[str, int] | None:
        """:class:`aiops.contracts.AlertStates`: the recorded state and ``startsAt``, or None."""
        with self.db.begin() as conn:
            row = conn.execute(select(alerts.c.state, alerts.c.starts_at_ms)
                               .where(alerts.c.fingerprint == fingerprint)).first()
        return None if row is None else (str(row[0]), int(row[1]))

    def refresh(self, alerts_: Sequence[tuple[str, int]], now_ms: int) -> None:
        """Note that external alerts were posted again: their new expiry (``ends_at_ms``) and
        ``last_eval_ms``, so a restarted agent resolves them at the right time."""
        if not alerts_:
            return
        q = update(alerts).where(alerts.c.fingerprint == bindparam("fp")).values(
            ends_at_ms=bindparam("until"), last_eval_ms=bindparam("seen"))
        with self.db.begin() as conn:
            conn.execute(q, [{"fp": fp, "until": until, "seen": now_ms} for fp, until in alerts_])

    def record(self, events: Sequence[Event]) -> int:
        """Store ``events`` (and the latest state of their alerts) in one transaction."""
        if not events:
            return 0
        latest: dict[str, dict[str, Any]] = {}
        rows = []
        for e in events:
            a = e.alert
            labels, annotations = dict(a.labels), dict(a.annotations)
            fp = fingerprint(a.labels)
            rows.append({
                "fingerprint": fp, "rule": e.rule, "alertname": labels.get("alertname", ""),
                "severity": labels.get("severity", ""), "labels": labels, "annotations": annotations,
                "state": a.state.value, "ts_ms": e.ts_ms, "value": _finite(a.value), "silenced_by": e.silenced_by,
                "note": e.note,
            })
            latest[fp] = {
                "fp": fp, "rule": e.rule, "labels": labels, "annotations": annotations, "state": a.state.value,
                "starts_at_ms": a.starts_at_ms, "ends_at_ms": a.ends_at_ms,
                "active_since_ms": a.starts_at_ms, "last_eval_ms": e.ts_ms, "value": _finite(a.value),
                "source": e.source, "extra": json_safe({"silenced_by": e.silenced_by} if e.silenced_by else {}),
            }
        with self.db.begin() as conn:
            conn.execute(insert(alert_events), rows)
            fps = list(latest)
            existing: set[str] = set()
            for i in range(0, len(fps), _CHUNK):
                part = fps[i:i + _CHUNK]
                existing |= {r[0] for r in conn.execute(
                    select(alerts.c.fingerprint).where(alerts.c.fingerprint.in_(part)))}
            new = [{**{k: v for k, v in r.items() if k != "fp"}, "fingerprint": r["fp"]}
                   for fp, r in latest.items() if fp not in existing]
            old = [r for fp, r in latest.items() if fp in existing]
            if new:
                conn.execute(insert(alerts), new)
            if old:
                conn.execute(
                    update(alerts).where(alerts.c.fingerprint == bindparam("fp")).values(
                        rule=bindparam("rule"), labels=bindparam("labels"), annotations=bindparam("annotations"),
                        state=bindparam("state"), starts_at_ms=bindparam("starts_at_ms"),
                        ends_at_ms=bindparam("ends_at_ms"), active_since_ms=bindparam("active_since_ms"),
                        last_eval_ms=bindparam("last_eval_ms"), value=bindparam("value"),
                        source=bindparam("source"), extra=bindparam("extra")),
                    old,
                )
        return len(rows)

    def query(self, *, state: str | None = None, name: str | None = None,
              labels: Mapping[str, str] | None = None, since_ms: int = 0, until_ms: int | None = None,
              limit: int = 1000) -> list[dict[str, Any]]:
        """State changes, newest first, filtered by state, alert name, labels and time."""
        q = select(alert_events).where(alert_events.c.ts_ms >= since_ms)
        if until_ms is not None:
            q = q.where(alert_events.c.ts_ms <= until_ms)
        if state:
            q = q.where(alert_events.c.state == state)
        if name:
            q = q.where(alert_events.c.alertname == name)
        q = q.order_by(alert_events.c.ts_ms.desc(), alert_events.c.id.desc())
        want = dict(labels or {})
        out: list[dict[str, Any]] = []
        # labels are JSON: filter them here, reading in pages so a label filter still honours limit
        page, offset = max(limit, 500), 0
        with self.db.begin() as conn:
            while len(out) < limit:
                rows = [dict(r._mapping) for r in conn.execute(q.limit(page).offset(offset))]
                if not rows:
                    break
                out += [r for r in rows if all(r["labels"].get(k) == v for k, v in want.items())]
                offset += page
                if not want:
                    break
        return out[:limit]

    def current(self, state: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        """The latest row of each alert (pending, firing, resolved, inactive), newest first."""
        q = select(alerts)
        if state:
            q = q.where(alerts.c.state == state)
        q = q.order_by(alerts.c.last_eval_ms.desc()).limit(limit)
        with self.db.begin() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def recent(self, since_ms: int, limit: int = 10_000) -> list[dict[str, Any]]:
        """Pending and firing alerts, and those resolved since ``since_ms``: what the API lists."""
        q = select(alerts).where(or_(alerts.c.state.in_(("pending", "firing")),
                                     and_(alerts.c.state == "resolved", alerts.c.last_eval_ms >= since_ms)))
        with self.db.begin() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(alerts.c.last_eval_ms.desc()).limit(limit))]

    def count_external_active(self) -> int:
        """Alerts posted from outside that are pending or firing, as recorded (a standby's view)."""
        with self.db.begin() as conn:
            n = conn.execute(select(func.count()).select_from(alerts).where(
                alerts.c.source != "rule", alerts.c.state.in_(("pending", "firing")))).scalar()
        return int(n or 0)

    @staticmethod
    def to_alert(row: Mapping[str, Any]) -> Alert:
        """An :class:`Alert` from a row of ``alerts``."""
        return Alert.of(row["labels"], row["annotations"], state=AlertState(row["state"]),
                        starts_at_ms=int(row["starts_at_ms"]), ends_at_ms=int(row["ends_at_ms"] or 0),
                        value=row["value"])


provide_alert_states(AlertHistory)  # remediation asks through the kernel's contract, never our table
