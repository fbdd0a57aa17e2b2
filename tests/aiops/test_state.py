from __future__ import annotations

import math
import threading

from sqlalchemy import func, insert, select

from aiops.model import Anomaly, Series
from aiops.notification import outbox
from aiops.state import StateDB
from alerting.tables import alert_events


def test_idempotency_key_has_exactly_one_winner_under_contention(state_db: StateDB) -> None:
    winners: list[str] = []
    lock = threading.Lock()

    def claim(owner: str) -> None:
        if state_db.claim_idempotency_key("fp1:scale-up:0", owner):
            with lock:
                winners.append(owner)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert state_db.idempotency_owner("fp1:scale-up:0") == winners[0]


def test_anomalies_with_nan_roundtrip(state_db: StateDB) -> None:
    s = Series.of("gpu_mem", gpu="0")
    state_db.record_anomalies([Anomaly(s, 1000, math.nan, 0.99, "zscore", 0.9, expected=math.inf)])
    rows = state_db.list_anomalies()
    assert rows[0]["series"] == s.key and rows[0]["value"] is None and rows[0]["expected"] is None
    assert rows[0]["score"] == 0.99


def test_kv_upsert(state_db: StateDB) -> None:
    state_db.kv_put("k", b"1")
    state_db.kv_put("k", b"2")
    assert state_db.kv_get("k") == b"2" and state_db.kv_get("missing") is None


def test_json_tables_and_audit(state_db: StateDB) -> None:
    with state_db.begin() as conn:
        conn.execute(insert(outbox).values(receiver="slack", payload={"text": "hi"}, created_ms=1))
        conn.execute(insert(alert_events).values(fingerprint="f", labels={"a": "b"}, annotations={},
                                                 state="firing", ts_ms=1))
    state_db.audit("planned", action_run_id="r1", playbook="scale", detail={"x": math.nan})
    with state_db.begin() as conn:
        assert conn.execute(select(outbox.c.payload)).scalar_one() == {"text": "hi"}
        assert conn.execute(select(func.count()).select_from(alert_events)).scalar_one() == 1


def test_safe_url_hides_password() -> None:
    db = StateDB("postgresql+psycopg://u:hunter2@127.0.0.1:1/x")
    assert "hunter2" not in db.safe_url
