"""Outbox faults that used to cost minutes: takeover of a dead agent's rows, recovery of a
receiver that comes back, 4xx retry policy, storm summaries that say what was folded.

Each test reproduces one failure of issue 11 against real HTTP receivers on 127.0.0.1 and a
real SQLite state DB (a killed agent is a real child process, SIGKILLed mid-send).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from notif_support import RecordingServer, Reply, group_keys, make_outbox, sample_notification

from aiops.model import Alert
from aiops.notification import Notification
from aiops.state import StateDB

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    d = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    d.create_all()
    yield d
    d.dispose()


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from notif_support import make_outbox, sample_notification
    from aiops.state import StateDB
    from aiops.logs import configure_logging

    configure_logging("INFO", stream=sys.stderr)

    class Srv:
        url = {url!r}

    db = StateDB({db_url!r}); db.create_all()
    box = make_outbox(db, {{"ops": Srv()}}, timeout_s=60, lease_s={lease_s!r}, poll_interval_s=0.2)
    box.start()
    for i in range(5):
        box.enqueue(sample_notification(group=f"g{{i}}"))
    print("enqueued", flush=True)
    time.sleep(120)
""")


def test_dead_agents_rows_are_taken_over_within_seconds(tmp_path: Path) -> None:
    """Before: a restarted agent waited for the dead one's 120 s lease (112.8 s seen)."""
    srv = RecordingServer()
    stuck, release = threading.Event(), threading.Event()

    def hang(req):  # type: ignore[no-untyped-def]
        stuck.set()
        release.wait(30)
        return Reply(500, b"too late", record=False)

    srv.behave = hang
    db_url = f"sqlite:///{tmp_path / 'state.db'}"
    # the default lease (6 s), as an agent gets it without configuration
    script = CHILD.format(tests=str(Path(__file__).parent), url=srv.url, db_url=db_url, lease_s=6.0)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=(tmp_path / "child.log").open("w"), text=True, env={**os.environ})
    db = StateDB(db_url)
    box = None
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "enqueued"
        assert stuck.wait(20), "the child never tried to send"
        time.sleep(3.0)  # the child's heartbeat renewed the lease at least once meanwhile
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        killed = time.monotonic()
        release.set()
        srv.behave = lambda req: Reply()
        box = make_outbox(db, {"ops": srv}, poll_interval_s=0.2, lease_s=6.0)
        box.start()  # the restarted agent
        srv.wait_for(5, timeout_s=15)
        took_s = time.monotonic() - killed
        assert took_s <= 10.0, f"took {took_s:.1f}s to deliver the dead agent's rows"
        assert box.drain(5)
        time.sleep(0.3)
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
        if box is not None:
            box.stop()
        db.dispose()
        srv.stop()
    keys = group_keys(srv.ok())
    assert sorted(keys) == sorted(sample_notification(group=f"g{i}").group_key for i in range(5))


def test_heartbeat_keeps_a_slow_send_from_being_taken_over(db: StateDB) -> None:
    """A receiver slower than the lease: the sender's heartbeat keeps it, the other agent never sends it too."""
    srv = RecordingServer()
    slow_once = threading.Event()

    def slow(req):  # type: ignore[no-untyped-def]
        if not slow_once.is_set():
            slow_once.set()
            time.sleep(2.5)  # four leases long
        return Reply()

    srv.behave = slow
    a = make_outbox(db, {"ops": srv}, lease_s=0.6, timeout_s=10)
    b = make_outbox(db, {"ops": srv}, lease_s=0.6, timeout_s=10)
    a.enqueue(sample_notification(group="slow"))
    a.start()
    try:
        assert slow_once.wait(10)
        b.start()  # a second agent polling every 50 ms for expired leases
        assert a.drain(15)
        time.sleep(0.5)
    finally:
        a.stop()
        b.stop()
        srv.stop()
    assert group_keys(srv.ok()) == [sample_notification(group="slow").group_key]
    assert srv.attempts == 1


def test_receiver_back_after_outage_gets_backlog_at_once(db: StateDB) -> None:
    """Before: backoff kept doubling; a 60 s outage ended 58 s before the message arrived."""
    srv = RecordingServer()
    port = srv.port
    srv.stop()  # connection refused from now on
    box = make_outbox(db, {"ops": srv}, backoff_initial_s=4.0, backoff_max_s=60.0, probe_interval_s=0.2,
                      poll_interval_s=0.1)
    for i in range(4):
        box.enqueue(sample_notification(group=f"g{i}"))
    box.start()
    back = None
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and min(r["attempts"] for r in map(box.row, range(1, 5))) < 2:
            time.sleep(0.1)  # every row has failed at least twice: the next try is seconds away
        waits = [box.row(i)["next_attempt_ms"] - box.now_ms() for i in range(1, 5)]
        assert max(waits) > 2000, waits  # backing off: without the probe the backlog would wait this long
        back = RecordingServer(port=port)
        restarted = time.monotonic()
        back.wait_for(4, timeout_s=10)
        took_s = time.monotonic() - restarted
        assert took_s < 2.0, f"backlog took {took_s:.2f}s after the receiver came back"
    finally:
        box.stop()
        if back is not None:
            back.stop()
    assert back is not None and sorted(group_keys(back.ok())) == sorted(
        sample_notification(group=f"g{i}").group_key for i in range(4))


def test_404_is_retried_until_it_answers(db: StateDB) -> None:
    """Before: one 404 failed the notification for good (manual ``aiops notify retry``)."""
    srv = RecordingServer()
    answers = iter([404, 404, 404])
    srv.behave = lambda req: Reply(next(answers, 200), b"no_such_hook")
    box = make_outbox(db, {"ops": srv})
    row_id = box.enqueue(sample_notification())
    box.start()
    try:
        assert box.drain(15)
    finally:
        box.stop()
        srv.stop()
    row = box.row(row_id)
    assert row["status"] == "sent" and row["attempts"] == 4 and srv.attempts == 4


def test_404_retry_is_bounded(db: StateDB) -> None:
    srv = RecordingServer()
    srv.behave = lambda req: Reply(404, b"gone")
    box = make_outbox(db, {"ops": srv}, client_errors_s=0.6)
    row_id = box.enqueue(sample_notification())
    box.start()
    try:
        assert box.drain(15)
    finally:
        box.stop()
        srv.stop()
    row = box.row(row_id)
    assert row["status"] == "failed" and "still refused after 0.6s" in row["last_error"]
    assert 2 <= srv.attempts <= 20
    assert (row["updated_ms"] - row["created_ms"]) >= 600


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_stops_at_once_and_says_so(db: StateDB, status: int, capsys: pytest.CaptureFixture[str]) -> None:
    srv = RecordingServer()
    srv.behave = lambda req: Reply(status, b"invalid_token")
    box = make_outbox(db, {"ops": srv})
    row_id = box.enqueue(sample_notification())
    box.start()
    try:
        assert box.drain(10)
        time.sleep(0.3)  # would a (wrong) retry happen? backoff is 0.05 s
    finally:
        box.stop()
        srv.stop()
    row = box.row(row_id)
    assert row["status"] == "failed" and row["attempts"] == 1 and srv.attempts == 1
    assert f"HTTP {status}" in row["last_error"] and "credentials refused" in row["last_error"]
    assert "token" not in row["last_error"].replace("invalid_token", "").replace("or token", "")


def test_storm_summary_counts_by_alertname_and_severity_and_links(db: StateDB) -> None:
    """Before: 2,000 alerts became 22 messages naming 22 alerts and a bare count for 1,978."""
    srv = RecordingServer()
    box = make_outbox(db, {"ops": srv}, rate={"ops": (60.0, 1)})
    box.receivers["ops"].base_url = "http://dash.example:8501"  # type: ignore[attr-defined]
    kinds = [("GpuHot", "critical")] * 30 + [("QueueDeep", "warning")] * 12 + [("DiskFull", "")] * 3
    for i, (name, severity) in enumerate(kinds):
        labels = {"alertname": name, "instance": f"n{i}", **({"severity": severity} if severity else {})}
        box.enqueue(Notification("ops", f"g{i}", (("alertname", name),), (Alert.of(labels, starts_at_ms=1),)))
    box.start()
    try:
        assert box.drain(20)
    finally:
        box.stop()
        srv.stop()
    got = srv.ok()
    assert len(got) == 1  # one token: the newest row carries the other 44
    summary = got[0].json["heldBackSummary"]
    print(summary)
    assert got[0].json["heldBack"] == 44
    assert "GpuHot (critical): 30 firing" in summary
    assert "QueueDeep (warning): 12 firing" in summary
    assert "DiskFull: 2 firing" in summary  # the last row carries the summary, its own alert is listed
    assert "http://dash.example:8501/?page=alerts&since_ms=" in summary and "&until_ms=" in summary
    counts = Counter({r["status"] for r in map(box.row, range(1, 46))})
    assert set(counts) == {"sent", "held_back"}  # nothing lost from history
