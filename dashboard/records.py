"""Reads of the state database for the pages: alerts, history, silences, notifications, runs.

Everything returns plain dicts or DataFrames with times as UTC ``datetime`` and labels as
dicts, so pages render chips and links without parsing JSON. Alerts, their history, silences and
action runs come through the owning packages' read APIs (:mod:`alerting.reads`,
:mod:`remediation.reads`), never their tables; the outbox, the audit trail and anomalies are the
ground floor's tables (:mod:`aiops.notification`, :mod:`aiops.state`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import pandas as pd
from sqlalchemy import func, select

from aiops.model import fingerprint_of, now_ms
from aiops.notification import outbox
from aiops.secretref import mask_secrets
from aiops.state import anomalies, audit
from alerting import reads as alert_reads
from dashboard.data import DashboardData
from remediation import reads as run_reads

__all__ = ["RULE_LABELS", "current_alerts", "alert_history", "silence_rows", "notification_rows", "run_rows",
           "audit_rows", "anomaly_rows", "alert_periods", "series_selector", "series_link", "to_time",
           "outbox_backlog", "labels_match", "ACTIVE_RUN_STATES", "matcher_lines"]

RULE_LABELS = {"alertname", "severity"}  # added by rules, not on the series
RECENT_RESOLVED_MS = 3_600_000
ACTIVE_RUN_STATES = ("pending_approval", "approved", "queued", "running", "applied")


def to_time(ms: Any) -> pd.Timestamp | None:
    """UTC time of an epoch-ms value; None for 0/None."""
    if ms is None or ms == 0 or (isinstance(ms, float) and ms != ms):
        return None
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


def series_selector(labels: Mapping[str, str], annotations: Mapping[str, str]) -> str:
    """The selector of an alert's series: its ``series`` annotation, else its labels minus the rule's."""
    if annotations.get("series"):
        return annotations["series"]
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in RULE_LABELS)
    return f"{{{inner}}}" if inner else ""


def series_link(selector: str, **extra: str) -> str:
    """Relative link to the explorer showing ``selector``."""
    tail = "".join(f"&{k}={quote(v, safe='')}" for k, v in extra.items() if v)
    return f"?page=metrics&series={quote(selector, safe='')}{tail}"


def labels_match(labels: Mapping[str, str], filters: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in filters.items() if v)


def current_alerts(data: DashboardData, now: int | None = None) -> list[dict[str, Any]]:
    """Firing, pending and (resolved within the last hour) alerts, each with its series selector."""
    now = now_ms() if now is None else now
    out = []
    for r in data.read(alert_reads.alert_rows, resolved_since_ms=now - RECENT_RESOLVED_MS):
        labels = dict(r["labels"] or {})
        ann = dict(r["annotations"] or {})
        out.append({"fingerprint": r["fingerprint"], "alertname": labels.get("alertname", r["rule"]),
                    "severity": labels.get("severity", ""), "state": r["state"], "labels": labels,
                    "annotations": ann, "summary": ann.get("summary", ann.get("description", "")),
                    "starts": to_time(r["starts_at_ms"]), "ends": to_time(r["ends_at_ms"]),
                    "value": r["value"], "source": r["source"],
                    "silenced_by": (r.get("extra") or {}).get("silenced_by"),
                    "selector": series_selector(labels, ann)})
    return out


def alert_history(data: DashboardData, since_ms: int, *, alertname: str = "", severity: str = "",
                  state: str = "", fingerprint: str = "", until_ms: int | None = None,
                  limit: int = 500) -> pd.DataFrame:
    """Recorded state changes, newest first."""
    rows = data.read(alert_reads.event_rows, since_ms=since_ms, until_ms=until_ms, limit=limit,
                     filters={"alertname": alertname, "severity": severity, "state": state,
                              "fingerprint": fingerprint})
    return pd.DataFrame([{"time": to_time(r["ts_ms"]), "alertname": r["alertname"], "severity": r["severity"],
                          "state": r["state"], "value": r["value"], "labels": _chips(r["labels"] or {}),
                          "silenced by": r["silenced_by"] or "", "note": r["note"] or "",
                          "fingerprint": r["fingerprint"]} for r in rows])


def _chips(labels: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(labels.items())]


def silence_rows(data: DashboardData, now: int | None = None) -> list[dict[str, Any]]:
    """Every silence with its status (active, pending, expired), newest first."""
    now = now_ms() if now is None else now
    out = []
    for r in data.read(alert_reads.silence_rows, limit=500):
        ends = r["expired_ms"] or r["ends_at_ms"]
        status = "expired" if ends <= now else "pending" if r["starts_at_ms"] > now else "active"
        out.append({"id": r["id"], "status": status, "matchers": _matcher_text(r["matchers"]),
                    "starts": to_time(r["starts_at_ms"]), "ends": to_time(ends), "created_by": r["created_by"],
                    "comment": r["comment"], "raw_matchers": r["matchers"]})
    return out


def _matcher_text(matchers: Any) -> str:
    return ", ".join(matcher_lines(matchers))


def matcher_lines(matchers: Any) -> list[str]:
    """A silence's stored matchers (strings, or Alertmanager JSON objects) as ``name="value"`` lines."""
    parts = []
    for m in matchers or []:
        if isinstance(m, dict):
            op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
                (bool(m.get("isRegex")), m.get("isEqual", True) is not False)]
            value = str(m.get("value", "")).replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{m.get("name")}{op}"{value}"')
        else:
            parts.append(str(m))
    return parts


def notification_rows(data: DashboardData, since_ms: int, fingerprint: str = "", limit: int = 300) -> pd.DataFrame:
    """Outbox rows (which receiver got which notification, when, with what outcome), newest first."""
    q = select(outbox).where(outbox.c.created_ms >= since_ms).order_by(outbox.c.created_ms.desc()).limit(limit)
    out = []
    for r in data.rows(q):
        payload = r["payload"] or {}
        alerts_in = payload.get("alerts", []) if isinstance(payload, dict) else []
        fps = [fingerprint_of([tuple(p) for p in a.get("labels", [])]) for a in alerts_in]
        if fingerprint and fingerprint not in fps:
            continue
        names = sorted({dict(tuple(p) for p in a.get("labels", [])).get("alertname", "") for a in alerts_in} - {""})
        states = sorted({str(a.get("state", "")) for a in alerts_in} - {""})
        out.append({"created": to_time(r["created_ms"]), "receiver": r["receiver"], "outcome": r["status"],
                    "alerts": ", ".join(names) or (payload.get("extra", {}) or {}).get("kind", ""),
                    "state": ", ".join(states), "attempts": r["attempts"], "sent": to_time(r["sent_ms"]),
                    "last error": (r["last_error"] or "")[:200]})
    return pd.DataFrame(out)


def outbox_backlog(data: DashboardData) -> dict[str, int]:
    """Rows per non-final status (queued, sending, failed)."""
    q = select(outbox.c.status, func.count()).where(outbox.c.status.in_(("queued", "sending", "failed"))) \
        .group_by(outbox.c.status)
    return {r["status"]: int(r["count_1"]) for r in data.rows(q)}


def run_rows(data: DashboardData, *, status: Sequence[str] = (), fingerprint: str = "", run_id: str = "",
             since_ms: int = 0, limit: int = 300) -> list[dict[str, Any]]:
    """Action runs, newest first."""
    rows = data.read(run_reads.run_rows, status=status, fingerprint=fingerprint, run_id=run_id,
                     since_ms=since_ms, limit=limit)
    return [{**r, "params": mask_secrets(r["params"]), "extra": mask_secrets(r["extra"]),
             "result": mask_secrets(r["result"]), "created": to_time(r["created_ms"]),
             "started": to_time(r["started_ms"]),
             "finished": to_time(r["finished_ms"]), "expires": to_time(r.get("expires_ms"))} for r in rows]


def audit_rows(data: DashboardData, run_id: str = "", limit: int = 500) -> pd.DataFrame:
    q = select(audit)
    if run_id:
        q = q.where(audit.c.action_run_id == run_id)
    rows = data.rows(q.order_by(audit.c.ts_ms.desc(), audit.c.id.desc()).limit(limit))
    return pd.DataFrame([{"time": to_time(r["ts_ms"]), "event": r["event"], "actor": r["actor"],
                          "run": r["action_run_id"] or "", "playbook": r["playbook"],
                          "detail": _short(mask_secrets(r["detail"]))} for r in rows])


def _short(detail: Any) -> str:
    if not detail:
        return ""
    if isinstance(detail, dict):
        return ", ".join(f"{k}={v}" for k, v in detail.items())[:300]
    return str(detail)[:300]


def anomaly_rows(data: DashboardData, since_ms: int, series: Sequence[str] = (), until_ms: int | None = None,
                 limit: int = 5000) -> list[dict[str, Any]]:
    q = select(anomalies).where(anomalies.c.ts_ms >= since_ms)
    if until_ms is not None:
        q = q.where(anomalies.c.ts_ms <= until_ms)
    if series:
        q = q.where(anomalies.c.series.in_(tuple(series)))
    return data.rows(q.order_by(anomalies.c.ts_ms.desc()).limit(limit))


def alert_periods(data: DashboardData, series: Sequence[str], labelsets: Sequence[Mapping[str, str]],
                  start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """Firing periods overlapping ``[start_ms, end_ms]`` of alerts on these series.

    An alert belongs to a series when its ``series`` annotation is that series, or when its
    labels (without the rule's) are all on the series.
    """
    rows = data.read(alert_reads.event_rows, until_ms=end_ms, oldest_first=True, limit=20_000)
    keys = set(series)
    open_: dict[str, dict[str, Any]] = {}
    periods: list[dict[str, Any]] = []
    for r in rows:
        labels = dict(r["labels"] or {})
        ann = dict(r["annotations"] or {})
        own = {k: v for k, v in labels.items() if k not in RULE_LABELS}
        mine = ann.get("series") in keys or (bool(own) and any(labels_match(ls, own) for ls in labelsets))
        if not mine:
            continue
        fp = r["fingerprint"]
        if r["state"] == "firing" and fp not in open_:
            open_[fp] = {"alertname": r["alertname"], "severity": r["severity"], "start": r["ts_ms"],
                         "fingerprint": fp}
        elif r["state"] in ("resolved", "inactive") and fp in open_:
            p = open_.pop(fp)
            if r["ts_ms"] >= start_ms:
                periods.append({**p, "end": r["ts_ms"]})
    periods += [{**p, "end": end_ms} for p in open_.values()]
    for p in periods:
        p["start"] = max(p["start"], start_ms)
    return periods
