"""The state database is unreachable: enqueue keeps notifications in memory, writes and sends them when it is back."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from notif_support import RecordingServer, group_keys, make_outbox, sample_notification
from prometheus_client import CollectorRegistry

from aiops.state import StateDB
from tests.conftest import PG_ADMIN_URL, _pg_available


def test_notifications_survive_a_database_outage() -> None:
    if not _pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"aiops_test_{uuid.uuid4().hex[:12]}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    srv = RecordingServer()
    db = StateDB(url)  # the database does not exist yet: every statement fails, like an outage
    registry = CollectorRegistry()
    box = make_outbox(db, {"ops": srv}, registry=registry)
    box.start()
    try:
        ids = [box.enqueue(sample_notification(group=f"g{i}")) for i in range(5)]
        assert ids == [0] * 5 and box.deferred == 5
        assert registry.get_sample_value("aiops_notifications_deferred") == 5.0
        with admin.connect() as conn:  # the database comes back
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        db.create_all()
        box.enqueue(sample_notification(group="g5"))  # written after the five older ones
        got = srv.wait_for(6, timeout_s=30)
        assert box.drain(10)
    finally:
        box.stop()
        db.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        srv.stop()
    assert group_keys(got) == [sample_notification(group=f"g{i}").group_key for i in range(6)]
    assert box.deferred == 0 and registry.get_sample_value("aiops_notifications_deferred") == 0.0
