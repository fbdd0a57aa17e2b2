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
