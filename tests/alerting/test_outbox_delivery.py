"""The outbox against real HTTP receivers: retries, Retry-After, final 4xx, lanes, rate limits, metrics."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from notif_support import RecordingServer, Reply, group_keys, make_outbox, sample_notification
from prometheus_client import CollectorRegistry

from aiops.state import StateDB


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    d = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    d.create_all()
    yield d
    d.dispose()


@pytest.fixture
def servers() -> Iterator[dict[str, RecordingServer]]:
    made: dict[str, RecordingServer] = {}
    yield made
    for s in made.values():
        s.stop()


def _server(servers: dict[str, RecordingServer], name: str) -> RecordingServer:
    servers[name] = RecordingServer()
    return servers[name]


def test_receiver_down_then_back_delivers_each_once(db: StateDB, servers) -> None:  # type: ignore[no-untyped-def]
    srv = _server(servers, "ops")
    down_until = time.monotonic() + 1.0
    srv.behave = lambda req: Reply(503, b"down", record=False) if time.monotonic() < down_until else Reply()
    box = make_outbox(db, servers)
    box.start()
    try:
        for i in range(20):
            box.enqueue(sample_notification(group=f"g{i}"))
        assert box.drain(30), box.counts()
    finally:
        box.stop()
    keys = group_keys(srv.ok())
    assert len(keys) == 20 and len(set(keys)) == 20  # every message, each exactly once
    assert srv.attempts > 20  # there were failed attempts while it was down
    assert box.counts() == {"sent": 20}
    first = box.row(1)
    assert first["attempts"] >= 2 and first["sent_ms"] is not None


def test_429_retry_after_is_honoured(db: StateDB, servers) -> None:  # type: ignore[no-untyped-def]
    srv = _server(servers, "ops")
    calls: list[float] = []

    def behave(req):  # type: ignore[no-untyped-def]
        calls.append(time.monotonic())
        return Reply(429, b"slow down", {"Retry-After": "1"}) if len(calls) == 1 else Reply()

    srv.behave = behave
    box = make_outbox(db, servers)
    box.start()
    try:
        box.enqueue(sample_notification())
        srv.wait_for(2)
        assert box.drain(10)
    finally:
        box.stop()
    assert calls[1] - calls[0] >= 0.95  # not earlier than Retry-After (a floor, not a timing race)
    assert box.row(1)["attempts"] == 2 and box.row(1)["status"] == "sent"


def test_4xx_stops_with_reason_when_not_retried(db: StateDB, servers) -> None:  # type: ignore[no-untyped-def]
    srv = _server(servers, "ops")
    srv.behave = lambda req: Reply(400, b"invalid_payload")
    registry = CollectorRegistry()
    box = make_outbox(db, servers, registry=registry, client_errors_s=0)
    box.start()
    try:
        row_id = box.enqueue(sample_notification())
        assert box.drain(10)
        time.sleep(0.3)  # would a (wrong) retry happen? backoff is 0.05 s
    finally:
        box.stop()
    row = box.row(row_id)
    assert row["status"] == "failed" and row["attempts"] == 1
    assert "HTTP 400: invalid_payload" in row["last_error"]
    assert "token" not in row["last_error"]
    assert srv.attempts == 1
    assert registry.get_sample_value("aiops_notifications_failed_total",
                                     {"receiver": "ops", "reason": "http_400"}) == 1.0


def test_slow_receiver_does_not_delay_another(db: StateDB, servers) -> None:  # type: ignore[no-untyped-def]
    slow, fast = _server(servers, "slow"), _server(servers, "fast")
    release = threading.Event()

    def hang(req):  # type: ignore[no-untyped-def]
        release.wait(20)
        return Reply()

    slow.behave = hang
    box = make_outbox(db, servers, timeout_s=30)
    box.start()
    try:
        box.enqueue(sample_notification("slow", group="s1"))
        box.enqueue(sample_notification("slow", group="s2"))
        deadline = time.monotonic() + 10
        while slow.attempts == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(5):
            box.enqueue(sample_notification("fast", group=f"f{i}"))
        fast.wait_for(5, timeout_s=10)  # all delivered while "slow" is still stuck on its first message
        assert not slow.ok() and box.pending("slow") == 2
        release.set()
        assert box.drain(20)
    finally:
        release.set()
        box.stop()
    expected = [sample_notification(group=g).group_key for g in ("s1", "s2")]
    assert group_keys(slow.ok()) == expected


def test_rate_limit_folds_backlog_into_summary(db: StateDB, servers) -> None:  # type: ignore[no-untyped-def]
    srv = _server(servers, "ops")
    registry = CollectorRegistry()
    box = make_outbox(db, servers, rate={"ops": (60.0, 2)}, registry=registry)
    for i in range(10):
        box.enqueue(sample_notification(group=f"g{i}"))
    box.start()
    try:
        assert box.drain(20)
    finally:
        box.stop()
    got = srv.ok()
    assert len(got) == 2
    assert got[0].json["groupKey"].endswith('group="g0"}') and "heldBack" not in got[0].json
    summary = got[1].json
    assert summary["groupKey"].endswith('group="g9"}') and summary["heldBack"] == 8
    assert "group=g1 ×1" in summary["heldBackSummary"]  # groups named by their group labels
    assert box.counts() == {"sent": 2, "held_back": 8}  # nothing dropped: every row is recorded
    held = [box.row(i) for i in range(2, 10)]
    assert {r["merged_into"] for r in held} == {10}
    assert registry.get_sample_value("aiops_notifications_held_back_total", {"receiver": "ops"}) == 8.0
    assert registry.get_sample_value("aiops_notifications_sent_total", {"receiver": "ops"}) == 2.0


def test_metrics_queue_and_latency(db: StateDB, servers) -> None:  # type: ignore[no-untyped-def]
    srv = _server(servers, "ops")
    registry = CollectorRegistry()
    box = make_outbox(db, servers, registry=registry)
    for i in range(3):
        box.enqueue(sample_notification(group=f"g{i}"))
    assert registry.get_sample_value("aiops_notification_queue", {"receiver": "ops"}) == 3.0
    box.start()
    try:
        srv.wait_for(3)
        assert box.drain(10)
        deadline = time.monotonic() + 5
        while registry.get_sample_value("aiops_notification_queue", {"receiver": "ops"}) != 0.0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        box.stop()
    assert registry.get_sample_value("aiops_notifications_sent_total", {"receiver": "ops"}) == 3.0
    assert registry.get_sample_value("aiops_notification_delivery_seconds_count", {"receiver": "ops"}) == 3.0


def test_unknown_receiver_and_send_resolved_are_recorded(db: StateDB, servers) -> None:  # type: ignore[no-untyped-def]
    from alerting.notifiers.webhook import WebhookNotifier
    from alerting.outbox import Outbox, ReceiverPolicy

    srv = _server(servers, "quiet")
    box = Outbox(db, {"quiet": WebhookNotifier("quiet", srv.url + "/h")},
                 policies={"quiet": ReceiverPolicy(send_resolved=False)})
    lost = box.enqueue(sample_notification("nobody"))
    skipped = box.enqueue(sample_notification("quiet", resolved=True))
    assert box.row(lost)["status"] == "failed" and "not configured" in box.row(lost)["last_error"]
    assert box.row(skipped)["status"] == "skipped"
    assert box.pending() == 0


def test_gives_up_after_the_configured_age(db: StateDB, servers) -> None:  # type: ignore[no-untyped-def]
    srv = _server(servers, "ops")
    srv.behave = lambda req: Reply(502, b"bad gateway")
    box = make_outbox(db, servers, give_up_after_s=0.5)
    box.start()
    try:
        row_id = box.enqueue(sample_notification())
        assert box.drain(15)
    finally:
        box.stop()
    row = box.row(row_id)
    assert row["status"] == "failed" and row["last_error"].startswith("gave up after")
    assert row["attempts"] >= 2


def test_order_is_kept_per_receiver(db: StateDB, servers) -> None:  # type: ignore[no-untyped-def]
    srv = _server(servers, "ops")
    box = make_outbox(db, servers)
    box.start()
    try:
        for i in range(30):
            box.enqueue(sample_notification(group=f"g{i:02d}"))
        assert box.drain(20)
    finally:
        box.stop()
    keys = group_keys(srv.ok())
    assert keys == sorted(keys) and Counter(keys).most_common(1)[0][1] == 1


def test_hanging_receiver_times_out_and_is_retried(db: StateDB, servers) -> None:  # type: ignore[no-untyped-def]
    srv = _server(servers, "ops")
    calls = {"n": 0}

    def behave(req):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return Reply(500, hang_s=2.0, record=False) if calls["n"] == 1 else Reply()

    srv.behave = behave
    registry = CollectorRegistry()
    box = make_outbox(db, servers, timeout_s=0.5, registry=registry)
    box.start()
    try:
        row_id = box.enqueue(sample_notification())
        srv.wait_for(1, timeout_s=20)
        assert box.drain(10)
    finally:
        box.stop()
    assert box.row(row_id)["status"] == "sent" and box.row(row_id)["attempts"] == 2
    assert registry.get_sample_value("aiops_notifications_failed_total", {"receiver": "ops", "reason": "timeout"}) == 1
