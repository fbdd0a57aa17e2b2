"""The engine end to end with a fake clock: rules -> lifecycle -> history, bus, groups -> sink."""

from __future__ import annotations

from pathlib import Path

from aiops.model import Alert, AlertState, Anomaly, Sample, Series
from aiops.state import StateDB
from aiops.store import SqliteSeriesStore
from alerting.matchers import parse_matchers
from alerting.silences import SilenceStore
from tests.alerting.core_support import T0_MS, FakeClock, RecordingSink, cpu, make_engine

HIGH_CPU = {"alert": "HighCPU", "expr": "cpu_ratio", "op": ">", "threshold": 0.8,
            "labels": {"severity": "warning"},
            "annotations": {"summary": "CPU {{ $value | humanizePercentage }} on {{ $labels.instance }}"}}


def db_at(tmp_path: Path) -> StateDB:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    db.create_all()
    return db


def test_breaking_sample_notifies_at_once_and_resolution_follows(tmp_path: Path) -> None:
    clock, sink, published = FakeClock(), RecordingSink(), []
    db = db_at(tmp_path)
    engine = make_engine(db, clock, sink, published=published, rules=[HIGH_CPU])
    engine.on_samples([cpu(0.5, clock.now), cpu(0.93, clock.now, "b")])
    assert sink.names() == [("chat", "firing", ["HighCPU/b:firing"])]
    assert dict(sink.got[0].alerts[0].annotations) == {"summary": "CPU 93% on b",
                                                       "series": 'cpu_ratio{instance="b"}'}  # for the link
    from alerting.notifiers.view import series_link

    assert series_link(sink.got[0].alerts[0], "http://dash:8501") == (
        "http://dash:8501/?series=cpu_ratio%7Binstance%3D%22b%22%7D")  # the dashboard's metrics page
    assert [[a.state.value for a in batch] for batch in published] == [["firing"]]
    clock.advance(20)
    engine.on_samples([cpu(0.4, clock.now, "b")])
    assert [a.state.value for a in published[-1]] == ["resolved"]
    assert len(sink.got) == 1  # the resolution waits for the group's interval
    clock.advance(60)
    engine.tick()
    assert sink.names()[-1] == ("chat", "resolved", ["HighCPU/b:resolved"])
    states = [e["state"] for e in engine.history.query(name="HighCPU")]
    assert states == ["resolved", "firing"]


def test_for_duration_via_timer_and_stale_series_resolve(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    rule = {**HIGH_CPU, "for": "5m"}
    engine = make_engine(db_at(tmp_path), clock, sink, rules=[rule], stale_after_s=600)
    engine.on_samples([cpu(0.9, clock.now)])
    assert sink.got == [] and [d["alert"].state for d in engine.alerts()] == [AlertState.PENDING]
    clock.advance(299)
    engine.evaluate()
    assert sink.got == []
    clock.advance(1)
    engine.evaluate()  # no new sample needed: the last one still breaks the rule
    assert sink.names() == [("chat", "firing", ["HighCPU/a:firing"])]
    clock.advance(601)  # the series went silent: stale, so the condition no longer holds
    engine.evaluate()
    assert [d["alert"].state for d in engine.alerts()] == [AlertState.RESOLVED]


def test_absent_rule_for_a_silent_series_and_for_a_never_seen_selector(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    rules = [{"alert": "NodeSilent", "type": "absent", "expr": 'up{job="node"}', "silent_for": "2m"},
             {"alert": "NoGpu", "type": "absent", "expr": 'gpu_up{job="gpu"}', "silent_for": "5m"}]
    engine = make_engine(db_at(tmp_path), clock, sink, rules=rules)
    engine.on_samples([Sample(Series.of("up", job="node", instance="a"), clock.now, 1.0)])
    clock.advance(119)
    engine.evaluate()
    assert sink.got == []
    clock.advance(1)
    engine.evaluate()
    assert sink.names() == [("chat", "firing", ["NodeSilent/a:firing"])]
    assert engine.alerts()[0]["alert"].value == 120.0
    clock.advance(180)
    engine.evaluate()
    labels = {dict(d["alert"].labels)["alertname"]: dict(d["alert"].labels) for d in engine.alerts()}
    assert labels["NoGpu"] == {"alertname": "NoGpu", "job": "gpu"}  # absent(): the selector's = labels
    engine.on_samples([Sample(Series.of("up", job="node", instance="a"), clock.now, 1.0)])
    engine.evaluate()
    assert {d["alert"].name: d["alert"].state.value for d in engine.alerts()}["NodeSilent"] == "resolved"


def test_anomaly_rule_fires_on_n_of_m_points(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    rule = {"alert": "LatencyAnomaly", "type": "anomaly", "expr": "latency_seconds", "detector": "zscore",
            "score": 0.9, "points": 3, "of": 5}
    engine = make_engine(db_at(tmp_path), clock, sink, rules=[rule])
    lat = Series.of("latency_seconds", instance="a")

    def point(i: int, score: float | None) -> None:
        ts = T0_MS + i * 10_000
        engine.on_samples([Sample(lat, ts, 1.0)])
        if score is not None:
            engine.on_anomalies([Anomaly(lat, ts, 1.0, score, "zscore", 0.9)])

    point(0, 0.95)
    point(1, None)
    point(2, 0.95)
    point(3, 0.5)  # under the rule's score
    engine.on_anomalies([Anomaly(lat, T0_MS + 30_000, 1.0, 0.99, "iforest", 0.9)])  # another detector: ignored
    assert sink.got == []  # 2 of 4
    point(4, 0.99)  # points 0..4: 0, 2 and 4 score over 0.9
    assert sink.names() == [("chat", "firing", ["LatencyAnomaly/a:firing"])]
    labels = dict(sink.got[0].alerts[0].labels)
    assert labels["detector"] == "zscore" and sink.got[0].alerts[0].value == 0.99
    point(5, None)  # points 1..5: only 2 and 4
    assert [d["alert"].state.value for d in engine.alerts()] == ["resolved"]


def test_forecast_rule_reads_the_store(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    store = SqliteSeriesStore(tmp_path / "ts.db")
    disk = Series.of("disk_used_ratio", mount="/data")
    flat = Series.of("disk_used_ratio", mount="/")
    # +1% a minute over the last 30 minutes, 0.80 now: 15 minutes to 0.95
    store.append([Sample(disk, clock.now - (30 - i) * 60_000, 0.50 + 0.01 * i) for i in range(31)])
    store.append([Sample(flat, clock.now - (30 - i) * 60_000, 0.5) for i in range(31)])
    rule = {"alert": "DiskFull", "type": "forecast", "expr": "disk_used_ratio", "window": "30m", "limit": 0.95,
            "horizon": "20m", "annotations": {"summary": "full in {{ $value | humanizeDuration }}"}}
    engine = make_engine(db_at(tmp_path), clock, sink, store=store, rules=[rule])
    engine.evaluate()
    assert sink.names() == [("chat", "firing", ["DiskFull/:firing"])]
    a = sink.got[0].alerts[0]
    assert a.label_dict["mount"] == "/data" and round(a.value or 0) == 900
    assert a.annotation_dict["summary"] == "full in 15m 0s"
    store.close()


def test_inhibition_mutes_warnings_while_critical_fires(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    rules = [{**HIGH_CPU, "alert": "CpuWarn", "threshold": 0.8, "labels": {"severity": "warning"}},
             {**HIGH_CPU, "alert": "CpuCrit", "threshold": 0.95, "labels": {"severity": "critical"}}]
    inhibit = [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                "equal": ["instance"]}]
    engine = make_engine(db_at(tmp_path), clock, sink, rules=rules, inhibit_rules=inhibit)
    engine.on_samples([cpu(0.99, clock.now, "a"), cpu(0.85, clock.now, "b")])
    got = sorted(x for n in sink.names() for x in n[2])
    assert got == ["CpuCrit/a:firing", "CpuWarn/b:firing"]  # CpuWarn/a is inhibited, b is not
    inhibited = {(d["alert"].name, d["alert"].label_dict["instance"]): d["inhibited"] for d in engine.alerts()}
    assert inhibited == {("CpuCrit", "a"): False, ("CpuWarn", "a"): True, ("CpuWarn", "b"): False}
    clock.advance(10)
    engine.on_samples([cpu(0.9, clock.now, "a")])  # critical resolves, the warning still holds
    clock.advance(60)
    engine.tick()
    assert "CpuWarn/a:firing" in [x for n in sink.names()[-2:] for x in n[2]]


def test_silences_mute_record_and_are_announced(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    engine = make_engine(db_at(tmp_path), clock, sink, rules=[HIGH_CPU], silence_receiver="ops")
    s = engine.add_silence(parse_matchers(['instance="a"']), None, clock.now + 3600_000, "ana", "maintenance")
    assert sink.names() == [("ops", "firing", ["SilenceCreated/:firing"])]
    assert sink.got[0].extra["kind"] == "silence_created" and sink.got[0].extra["created_by"] == "ana"
    engine.on_samples([cpu(0.99, clock.now, "a")])
    assert len(sink.got) == 1  # silenced: no notification
    clock.advance(30)
    engine.on_samples([cpu(0.1, clock.now, "a")])  # resolves while silenced
    events = engine.history.query(name="HighCPU")
    assert [(e["state"], e["silenced_by"]) for e in events] == [("resolved", s.id), ("firing", s.id)]
    engine.expire_silence(s.id)
    assert sink.names()[-1] == ("ops", "resolved", ["SilenceExpired/:resolved"])
    clock.advance(60)
    engine.tick()
    assert len(sink.got) == 2  # the receiver never heard of the firing alert: no "resolved" for it


def test_alerts_from_alertmanager_are_routed_and_recorded(tmp_path: Path) -> None:
    clock, sink, published = FakeClock(), RecordingSink(), []
    engine = make_engine(db_at(tmp_path), clock, sink, published=published)
    a = Alert.of({"alertname": "PromUp", "instance": "p"}, state=AlertState.FIRING, starts_at_ms=clock.now)
    assert engine.receive([a]) == 1
    assert engine.receive([a]) == 0  # Alertmanager repeats: no duplicate change
    assert sink.names() == [("chat", "firing", ["PromUp/p:firing"])]
    assert published[0][0].fingerprint == a.fingerprint
    rows = engine.history.query(name="PromUp")
    assert [(r["state"], r["rule"]) for r in rows] == [("firing", "PromUp")]


def test_restart_takes_back_firing_alerts_without_paging_again(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    db = db_at(tmp_path)
    first = make_engine(db, clock, sink, rules=[HIGH_CPU, {**HIGH_CPU, "alert": "Old", "threshold": 0.9}])
    first.on_samples([cpu(0.99, clock.now, "a")])
    assert len(sink.got) == 2  # HighCPU/a and Old/a
    # the agent restarts; the rule "Old" was removed from the configuration meanwhile
    clock.advance(30)
    sink2 = RecordingSink()
    second = make_engine(db, clock, sink2, rules=[HIGH_CPU])
    assert second.restore() == 1
    assert [(d["alert"].name, d["alert"].state.value) for d in second.alerts()] == [("HighCPU", "firing")]
    assert [e["state"] for e in second.history.query(name="Old")] == ["resolved", "firing"]
    second.on_samples([cpu(0.99, clock.now, "a")])
    clock.advance(60)
    second.tick()
    assert sink2.got == []  # still firing: its receiver already knows
    second.on_samples([cpu(0.1, clock.now, "a")])
    clock.advance(60)
    second.tick()
    assert sink2.names() == [("chat", "resolved", ["HighCPU/a:resolved"])]


def test_silences_from_the_database_and_natural_expiry_are_announced(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    db = db_at(tmp_path)
    engine = make_engine(db, clock, sink, rules=[HIGH_CPU], silence_receiver="ops")
    engine.silences.refresh_ms = 0
    engine.tick()  # first look: what exists now is not news
    other = SilenceStore(db)  # the CLI writing the database directly
    s = other.add(parse_matchers(['alertname="HighCPU"']), clock.now, clock.now + 60_000, "cli-user", "",
                  now_ms=clock.now)
    engine.tick()
    engine.tick()
    assert sink.names() == [("ops", "firing", ["SilenceCreated/:firing"])]
    assert sink.got[0].extra["silence_id"] == s.id
    clock.advance(61)  # it ends by itself
    engine.tick()
    assert sink.names()[1:] == [("ops", "resolved", ["SilenceExpired/:resolved"])]
    engine.tick()
    assert len(sink.got) == 2


def test_nan_and_inf_never_crash(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    engine = make_engine(db_at(tmp_path), clock, sink, rules=[HIGH_CPU])
    engine.on_samples([cpu(float("nan"), clock.now, "n"), cpu(float("inf"), clock.now, "i"),
                       cpu(float("-inf"), clock.now, "m")])
    assert sink.names() == [("chat", "firing", ["HighCPU/i:firing"])]
    assert sink.got[0].alerts[0].annotation_dict["summary"] == "CPU +Inf on i"
    assert [e["value"] for e in engine.history.query()] == [None]  # stored as NULL
    engine.evaluate()


def test_seed_from_store_notices_a_series_that_went_silent_while_down(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    store = SqliteSeriesStore(tmp_path / "ts.db")
    up = Series.of("up", job="node", instance="a")
    ancient = Series.of("up", job="node", instance="removed-long-ago")
    store.append([Sample(up, clock.now - 180_000, 1.0), Sample(ancient, clock.now - 86400_000, 1.0),
                  Sample(Series.of("cpu_ratio", instance="a"), clock.now - 1000, 0.99)])
    rules = [{"alert": "NodeSilent", "type": "absent", "expr": 'up{job="node"}', "silent_for": "2m"}, HIGH_CPU]
    engine = make_engine(db_at(tmp_path), clock, sink, store=store, rules=rules)
    assert engine.seed_from_store() == 2
    engine.evaluate()
    got = sorted(x for n in sink.names() for x in n[2])
    # a stored value older than the start neither fires nor resolves a threshold rule: the next
    # live sample decides (an agent down for seconds would otherwise fire on a value long gone)
    assert got == ["NodeSilent/a:firing"]
    engine.on_samples([cpu(0.99, clock.now, "a")])
    assert sorted(x for n in sink.names() for x in n[2]) == ["HighCPU/a:firing", "NodeSilent/a:firing"]
    engine.on_samples([cpu(0.1, clock.now - 5000, "a")])  # late and older than the live one
    assert [d["alert"].state.value for d in engine.alerts() if d["alert"].name == "HighCPU"] == ["firing"]
    store.close()


def test_rules_sharing_a_name_per_severity_do_not_resolve_each_other(tmp_path: Path) -> None:
    clock, sink = FakeClock(), RecordingSink()
    rules = [{**HIGH_CPU, "threshold": 0.8, "labels": {"severity": "warning"}},
             {**HIGH_CPU, "threshold": 0.95, "labels": {"severity": "critical"}}]
    db = db_at(tmp_path)
    engine = make_engine(db, clock, sink, rules=rules)
    engine.on_samples([cpu(0.99, clock.now, "a")])
    clock.advance(15)
    engine.evaluate()
    engine.evaluate()
    states = sorted((d["alert"].label_dict["severity"], d["alert"].state.value) for d in engine.alerts())
    assert states == [("critical", "firing"), ("warning", "firing")]
    store = SqliteSeriesStore(tmp_path / "ts.db")  # the agent stores the samples it evaluates
    store.append([cpu(0.99, clock.now, "a")])
    after = RecordingSink()
    again = make_engine(db, clock, after, store=store, rules=rules)
    assert again.restore() == 2
    again.seed_from_store()  # what the component does at start, before its first evaluation
    again.evaluate()
    assert sorted(d["alert"].state.value for d in again.alerts()) == ["firing", "firing"]
    assert after.got == []
    store.close()


def test_a_restored_anomaly_alert_stays_firing_until_its_window_says_otherwise(tmp_path: Path) -> None:
    """After a restart or an HA takeover the anomaly windows are empty; before, the first
    evaluation swept every restored anomaly alert as resolved (a false "resolved", and the next
    anomaly fired a second episode: a second action)."""
    clock, sink, published = FakeClock(), RecordingSink(), []
    rule = {"alert": "LatencyAnomaly", "type": "anomaly", "expr": "latency_seconds", "detector": "zscore",
            "score": 0.9, "points": 2, "of": 3}
    db = db_at(tmp_path)
    first = make_engine(db, clock, sink, rules=[rule])
    lat = Series.of("latency_seconds", instance="a")
    for i in range(2):
        ts = clock.now + i * 1000
        first.on_samples([Sample(lat, ts, 1.0)])
        first.on_anomalies([Anomaly(lat, ts, 1.0, 0.95, "zscore", 0.9)])
    assert sink.names() == [("chat", "firing", ["LatencyAnomaly/a:firing"])]
    clock.advance(5)
    second = make_engine(db, clock, sink, published=published, rules=[rule])  # the successor
    assert second.restore() == 1
    second.evaluate()
    second.tick()
    assert len(sink.got) == 1 and published == []  # still firing: nothing to tell
    second.on_samples([Sample(lat, clock.now, 1.0)])  # one calm point: 2 of the last 3 still hit
    assert len(sink.got) == 1
    clock.advance(1)
    second.on_samples([Sample(lat, clock.now, 1.0)])  # two calm points: 1 of 3, resolved once
    second.tick()
    assert [a.state.value for batch in published for a in batch] == ["resolved"]
