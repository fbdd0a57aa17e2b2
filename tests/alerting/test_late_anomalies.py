"""Anomalies that reach the rules leader late (handed over by a standby through the inbox).

The leader's own samples keep moving an anomaly rule's window on while a standby's anomaly
is on its way. Before, the window was the last ``of`` points *as they arrived*: an anomaly
that came after ``of`` newer samples of its series was sorted in and cut off at once, and one
that came in time to sit in the window still missed the window it belonged to (the one ending
at its own sample), so a rule with ``points`` > 1 never saw the two hits together. Now a
point is placed at its sample time and counted in every window of ``of`` points that contains
it; a condition that held only in the past fires and resolves at once (``startsAt``/``endsAt``
the sample times), and a row delivered again changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiops.model import Anomaly, Sample, Series
from aiops.state import StateDB
from alerting.engine import AlertEngine
from alerting.history import AlertHistory
from alerting.inbox import Inbox
from tests.alerting.core_support import T0_MS, FakeClock, RecordingSink, make_engine

LAT = Series.of("latency_seconds", instance="a")
STEP_MS = 1000


def _rule(points: int, of: int, **more: Any) -> dict[str, Any]:
    return {"alert": "LatencyAnomaly", "type": "anomaly", "expr": "latency_seconds", "detector": "zscore",
            "score": 0.9, "points": points, "of": of, **more}


def _pair(tmp_path: Path, rule: dict[str, Any]) -> tuple[StateDB, FakeClock, RecordingSink, AlertEngine, AlertEngine,
                                                          list[Any]]:
    """A leader and a standby on one state DB (the standby's detection shard owns LAT)."""
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    db.create_all()
    clock, sink, published = FakeClock(), RecordingSink(), []
    leader = make_engine(db, clock, sink, published=published, rules=[rule])
    leader.inbox = Inbox(db, sender="leader")
    standby = make_engine(db, clock, RecordingSink(), rules=[rule])
    standby.inbox = Inbox(db, sender="standby")
    standby.stand_by()
    return db, clock, sink, leader, standby, published


def _ts(k: int) -> int:
    return T0_MS + k * STEP_MS


def _sample(engines: list[AlertEngine], clock: FakeClock, k: int) -> None:
    """Collection k: both agents scrape the same value (same sample time)."""
    clock.now = max(clock.now, _ts(k) + 200)
    for e in engines:
        e.on_samples([Sample(LAT, _ts(k), 1.0)])


def _hit(k: int) -> Anomaly:
    return Anomaly(LAT, _ts(k), 1.0, 0.95, "zscore", 0.9)


def _states(db: StateDB) -> list[tuple[str, int]]:
    return [(e["state"], e["ts_ms"]) for e in reversed(AlertHistory(db).query(name="LatencyAnomaly"))]


def test_an_anomaly_handed_over_after_of_newer_samples_still_alerts(tmp_path: Path) -> None:
    db, clock, sink, leader, standby, published = _pair(tmp_path, _rule(1, 3))
    for k in range(2):
        _sample([leader, standby], clock, k)
    standby.on_anomalies([_hit(1)])  # the standby's shard scored sample 1 as an anomaly ...
    for k in range(2, 6):            # ... and the leader moved on by 4 samples before reading it
        _sample([leader, standby], clock, k)
    assert leader.drain_inbox() == 1
    leader.tick()
    # the window ending at sample 1 held (1 of 3): it fired then, and resolved at sample 4,
    # the first window without it; both are told now
    alerts = [a for batch in published for a in batch]
    assert [(a.state.value, a.starts_at_ms, a.ends_at_ms) for a in alerts] == [
        ("firing", _ts(1), 0), ("resolved", _ts(1), _ts(4))]
    assert [s for s, _ in _states(db)] == ["firing", "resolved"]
    assert [n.status for n in sink.got] == ["firing"]  # group_wait 0; the resolution a group_interval later
    clock.advance(60)
    leader.tick()
    assert [n.status for n in sink.got] == ["firing", "resolved"]

    # the same row again (a leader died after applying it and before deleting it; or the
    # standby wrote it twice): nothing changes, nothing is told twice
    standby.on_anomalies([_hit(1)])
    _sample([leader, standby], clock, 6)
    assert leader.drain_inbox() == 1
    leader.tick()
    assert len([a for batch in published for a in batch]) == 2 and len(_states(db)) == 2


def test_a_late_hit_counts_in_the_window_of_its_own_sample(tmp_path: Path) -> None:
    db, clock, sink, leader, standby, published = _pair(tmp_path, _rule(2, 3))
    _sample([leader, standby], clock, 0)
    _sample([leader, standby], clock, 1)
    leader.on_anomalies([_hit(1)])  # the leader's own shard: on time
    _sample([leader, standby], clock, 2)
    standby.on_anomalies([_hit(2)])  # the standby's shard, read by the leader after samples 3 and 4
    _sample([leader, standby], clock, 3)
    _sample([leader, standby], clock, 4)
    assert published == []
    assert leader.drain_inbox() == 1
    # windows [0 1 2] and [1 2 3] hold 2 of 3: firing from sample 2, resolved at sample 4 ([2 3 4])
    assert [(a.state.value, a.starts_at_ms) for batch in published for a in batch] == [
        ("firing", _ts(2)), ("resolved", _ts(2))]
    standby.on_anomalies([_hit(2)])  # delivered twice
    assert leader.drain_inbox() == 1
    assert len([a for batch in published for a in batch]) == 2


def test_a_late_hit_inside_the_window_fires_now_when_the_window_still_holds(tmp_path: Path) -> None:
    db, clock, sink, leader, standby, published = _pair(tmp_path, _rule(2, 4))
    for k in range(3):
        _sample([leader, standby], clock, k)
    standby.on_anomalies([_hit(1)])
    leader.on_anomalies([_hit(2)])  # on time: 1 of 4 so far
    _sample([leader, standby], clock, 3)
    assert published == []
    assert leader.drain_inbox() == 1  # [0 1 2] and [0 1 2 3] hold 2 of 4: firing, and still so
    assert [(a.state.value, a.starts_at_ms) for batch in published for a in batch] == [("firing", _ts(2))]
    _sample([leader, standby], clock, 4)  # [1 2 3 4]: still 2
    _sample([leader, standby], clock, 5)  # [2 3 4 5]: 1, resolved once
    assert [a.state.value for batch in published for a in batch] == ["firing", "resolved"]
    standby.on_anomalies([_hit(1)])  # again, after the episode ended: changes nothing
    assert leader.drain_inbox() == 1
    assert len([a for batch in published for a in batch]) == 2


def test_a_successor_that_applies_the_row_again_does_not_tell_the_episode_twice(tmp_path: Path) -> None:
    db, clock, sink, leader, standby, published = _pair(tmp_path, _rule(1, 2))
    for k in range(4):
        _sample([leader, standby], clock, k)
    standby.on_anomalies([_hit(0)])
    leader.inbox.done = lambda ids: None  # type: ignore[method-assign,union-attr]  # dies before deleting
    assert leader.drain_inbox() == 1
    assert [a.state.value for batch in published for a in batch] == ["firing", "resolved"]

    successor_published: list[Any] = []
    successor = make_engine(db, clock, RecordingSink(), published=successor_published, rules=[_rule(1, 2)])
    successor.inbox = Inbox(db, sender="successor")
    successor.restore()
    for k in range(4, 6):
        _sample([successor], clock, k)
    assert successor.drain_inbox() == 1  # the same row, from a fresh window
    assert successor_published == [] and len(_states(db)) == 2


def test_in_order_points_behave_as_before(tmp_path: Path) -> None:
    """The single-agent path: points in order, the window is the last ``of`` of them."""
    db, clock, sink, leader, standby, published = _pair(tmp_path, _rule(2, 3))
    for k in range(5):
        _sample([leader], clock, k)
        if k in (1, 2):
            leader.on_anomalies([_hit(k)])
    # fires at sample 2 ([0 1 2]), holds at 3 ([1 2 3]), resolves at 4 ([2 3 4])
    assert [(a.state.value, a.starts_at_ms) for batch in published for a in batch] == [
        ("firing", _ts(2) + 200), ("resolved", _ts(2) + 200)]
    leader.on_samples([Sample(LAT, _ts(0) - 5 * STEP_MS, 1.0)])  # a late calm sample: nothing to change
    leader.on_anomalies([_hit(2)])  # its own anomaly again: counted once
    _sample([leader], clock, 5)
    assert len([a for batch in published for a in batch]) == 2
