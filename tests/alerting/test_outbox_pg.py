"""Two agents sharing PostgreSQL: every message is delivered exactly once, and both agents take part."""

from __future__ import annotations

import time
from collections import Counter

from notif_support import RecordingServer, Reply, group_keys, make_outbox, sample_notification

from aiops.state import StateDB

N = 200


def test_two_outboxes_on_postgresql_send_each_row_once(pg_url: str) -> None:
    srv = RecordingServer()

    def slowish(req):  # type: ignore[no-untyped-def]
        time.sleep(0.01)  # keeps both lanes busy at once, so they really compete for rows
        return Reply()

    srv.behave = slowish
    db_a, db_b = StateDB(pg_url), StateDB(pg_url)
    db_a.create_all()
    a = make_outbox(db_a, {"ops": srv})
    b = make_outbox(db_b, {"ops": srv})
    a.start()
    b.start()
    try:
        for i in range(N):
            (a if i % 2 else b).enqueue(sample_notification(group=f"g{i:03d}", n_alerts=1))
        assert a.drain(60) and b.drain(60), a.counts()
        time.sleep(0.3)  # room for a (wrong) duplicate
    finally:
        a.stop()
        b.stop()
    keys = group_keys(srv.ok())
    dupes = [k for k, c in Counter(keys).items() if c > 1]
    assert not dupes and len(keys) == N
    assert a.counts() == {"sent": N}
    with db_a.engine.connect() as conn:
        owners = dict(conn.exec_driver_sql("select lease_owner, count(*) from outbox group by lease_owner").all())
    assert set(owners) == {a.owner, b.owner}, owners  # both agents delivered a share
    db_a.dispose()
    db_b.dispose()
    srv.stop()


def test_two_outboxes_share_one_rate_limit(pg_url: str) -> None:
    srv = RecordingServer()
    db_a, db_b = StateDB(pg_url), StateDB(pg_url)
    db_a.create_all()
    a = make_outbox(db_a, {"ops": srv}, rate={"ops": (60.0, 3)})
    b = make_outbox(db_b, {"ops": srv}, rate={"ops": (60.0, 3)})
    for i in range(40):
        (a if i % 2 else b).enqueue(sample_notification(group=f"g{i:02d}", n_alerts=1))
    started = time.monotonic()
    a.start()
    b.start()
    try:
        assert a.drain(60) and b.drain(60), a.counts()
        elapsed = time.monotonic() - started
    finally:
        a.stop()
        b.stop()
    got = [r.json for r in srv.ok()]
    # one bucket for both agents: burst 3 plus 1 a second, not twice that
    assert len(got) <= 3 + elapsed * 1.0 + 1, (len(got), elapsed)
    assert sum(1 + m.get("heldBack", 0) for m in got) == 40  # nothing lost
    assert a.counts() == {"sent": len(got), "held_back": 40 - len(got)}
    db_a.dispose()
    db_b.dispose()
    srv.stop()
