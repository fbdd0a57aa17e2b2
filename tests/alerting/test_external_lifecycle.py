"""Alerts posted from outside (Alertmanager's webhook) have a lifecycle and survive a restart.

Before: intake alerts never expired; after a restart they vanished from the API but stayed
``firing`` in the history forever, and the next Alertmanager re-post notified again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops.model import Alert, AlertState
from aiops.state import StateDB
from tests.alerting.core_support import T0_MS, FakeClock, RecordingSink, make_engine


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    d = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    d.create_all()
    return d


def external(instance: str = "db-1", ends_at_ms: int = 0) -> Alert:
    return Alert.of({"alertname": "DiskFull", "instance": instance, "severity": "page"}, {"summary": "full"},
                    state=AlertState.FIRING, starts_at_ms=T0_MS - 60_000, ends_at_ms=ends_at_ms)


def test_posted_alert_without_ends_at_resolves_after_resolve_timeout(db: StateDB) -> None:
    clock, sink = FakeClock(), RecordingSink()
    engine = make_engine(db, clock, sink, resolve_timeout_s=300)
    assert engine.receive([external()]) == 1
    engine.tick()
    clock.advance(240)
    assert engine.receive([external()]) == 0  # posted again: still firing, its expiry moves on
    clock.advance(240)  # 480 s after the first post, 240 s after the last
    assert engine.evaluate() == 0
    clock.advance(61)
    assert engine.evaluate() == 1  # 301 s without a re-post: resolved
    engine.tick()
    assert [n[1] for n in sink.names()] == ["firing", "resolved"]
    row = engine.history.current(state="resolved", limit=10)[0]
    assert row["source"] == "alertmanager" and row["ends_at_ms"] == T0_MS + 540_000


def test_an_ends_at_ahead_is_honoured(db: StateDB) -> None:
    clock, sink = FakeClock(), RecordingSink()
    engine = make_engine(db, clock, sink, resolve_timeout_s=300)
    engine.receive([external(ends_at_ms=T0_MS + 30_000)])
    clock.advance(31)
    assert engine.evaluate() == 1


def test_restart_neither_loses_nor_re_notifies_posted_alerts(db: StateDB) -> None:
    clock, sink = FakeClock(), RecordingSink()
    first = make_engine(db, clock, sink, resolve_timeout_s=300)
    first.receive([external("db-1"), external("db-2")])
    first.tick()
    assert len(sink.names()) == 2
    clock.advance(100)
    first.receive([external("db-1")])  # db-1 posted again before the restart; db-2 not

    again = RecordingSink()
    second = make_engine(db, clock, again, resolve_timeout_s=300)  # the restarted agent
    assert second.restore() == 2
    assert {d["alert"].label_dict["instance"] for d in second.alerts()
            if d["alert"].state is AlertState.FIRING} == {"db-1", "db-2"}  # the API lists them again
    clock.advance(10)
    assert second.receive([external("db-1"), external("db-2")]) == 0  # Alertmanager's re-post
    second.tick()
    assert again.names() == []  # nothing notified twice
    clock.advance(301)
    assert second.evaluate() == 2
    second.tick()
    assert [n[1] for n in again.names()] == ["resolved", "resolved"]
