"""alerting.reads: the rows the dashboard shows, without it touching alerting's tables."""

from __future__ import annotations

import pytest

from aiops.model import Alert, AlertState
from aiops.state import StateDB
from alerting import reads
from alerting.history import AlertHistory, Event


def _event(name: str, state: AlertState, ts: int, severity: str = "page") -> Event:
    alert = Alert.of({"alertname": name, "severity": severity, "instance": "a:1"}, {"summary": name},
                     state=state, starts_at_ms=1_000, ends_at_ms=ts if state is AlertState.RESOLVED else 0)
    return Event(rule=name, alert=alert, ts_ms=ts)


def test_current_alerts_keep_recently_resolved_only(state_db: StateDB) -> None:
    history = AlertHistory(state_db)
    history.record([_event("Firing", AlertState.FIRING, 5_000), _event("Old", AlertState.RESOLVED, 2_000),
                    _event("Recent", AlertState.RESOLVED, 9_000)])
    names = [r["labels"]["alertname"] for r in reads.alert_rows(state_db, resolved_since_ms=8_000)]
    assert sorted(names) == ["Firing", "Recent"]


def test_events_filter_order_and_refuse_unknown_columns(state_db: StateDB) -> None:
    AlertHistory(state_db).record([_event("A", AlertState.FIRING, 1_000), _event("B", AlertState.FIRING, 2_000),
                                   _event("A", AlertState.RESOLVED, 3_000, severity="ticket")])
    assert [r["ts_ms"] for r in reads.event_rows(state_db)] == [3_000, 2_000, 1_000]
    assert [r["ts_ms"] for r in reads.event_rows(state_db, oldest_first=True, until_ms=2_000)] == [1_000, 2_000]
    only_a = reads.event_rows(state_db, filters={"alertname": "A", "severity": ""})
    assert [(r["alertname"], r["state"]) for r in only_a] == [("A", "resolved"), ("A", "firing")]
    with pytest.raises(ValueError, match="labels"):
        reads.event_rows(state_db, filters={"labels": "x"})
