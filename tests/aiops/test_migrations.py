"""Alembic: a state database written by aiops 0.1.0 upgrades and reads back; the schema the
migrations make is the schema the packages declare (so every table change needs a migration)."""

from __future__ import annotations

import importlib
import math
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from aiops.model import ActionStatus, AlertState
from aiops.notification import decode_notification, outbox
from aiops.state import StateDB, metadata
from alerting.history import AlertHistory
from alerting.silences import SilenceStore
from remediation.runs import RunStore
from tests.conftest import pg_database

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).with_name("fixtures")
FIRING_FP = "a199700e4638d63e"


def _import_every_table() -> None:
    """Tables register on the kernel's metadata when their module is imported: import them all."""
    importlib.import_module("aiops.notification")
    roots = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
    for root in roots:
        if (REPO / root / "tables.py").exists():
            importlib.import_module(f"{root}.tables")


@pytest.fixture(params=["sqlite", "postgresql"])
def release_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateDB]:
    """A state database exactly as aiops 0.1.0 left it, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "state.db"
        shutil.copy(FIXTURES / "state-v0.1.0.db", path)
        db = StateDB(f"sqlite:///{path}")
        yield db
        db.dispose()
        return
    with pg_database() as url:
        db = StateDB(url)
        with db.engine.begin() as conn:
            sql = "\n".join(line for line in (FIXTURES / "state-v0.1.0-postgresql.sql").read_text().splitlines()
                            if not line.startswith("--"))
            for stmt in sql.split(";\n"):
                if stmt.strip():
                    conn.exec_driver_sql(stmt)
        yield db
        db.dispose()


def test_a_release_database_upgrades_and_reads_back(release_db: StateDB) -> None:
    db = release_db
    assert db.revision() is None  # 0.1.0 knew no migrations
    head = db.upgrade()
    assert db.revision() == head and db.upgrade() == head  # a second start changes nothing

    current = {row["fingerprint"]: row for row in AlertHistory(db).current()}
    assert current[FIRING_FP]["state"] == AlertState.FIRING.value and current[FIRING_FP]["value"] == 2.5
    assert AlertHistory(db).firing_since_ms(FIRING_FP) == 1_764_000_000_000
    resolved = [r for fp, r in current.items() if fp != FIRING_FP]
    assert len(resolved) == 1 and resolved[0]["state"] == "resolved" and resolved[0]["value"] is None
    assert {e["alertname"] for e in AlertHistory(db).query()} == {"HighLatency", "GpuHot"}

    with db.begin() as conn:
        rows = {r["receiver"]: r for r in conn.execute(sa.select(outbox)).mappings()}
    sent = decode_notification(rows["oncall"]["payload"])
    assert rows["oncall"]["status"] == "sent" and sent.alerts[0].label_dict["deployment"] == "llm"
    assert sent.external_url == "http://127.0.0.1:9321" and dict(sent.extra) == {"k": "v"}
    queued = decode_notification(rows["team"]["payload"])
    assert rows["team"]["held_back"] == 2 and math.isnan(queued.alerts[0].value or 0.0)

    runs = RunStore(db)
    scaled = runs.get("run-0001")
    assert scaled.status is ActionStatus.VERIFIED and scaled.result == {"replicas": 4, "previous": 2}
    assert scaled.params["replicas"] == 4 and scaled.alert_fingerprint == FIRING_FP
    assert runs.get("run-0002").status is ActionStatus.PENDING_APPROVAL
    assert [a["event"] for a in runs.audit_trail("run-0001")][-1] == "verified"

    assert SilenceStore(db).get("s1").comment == "maintenance"
    assert db.kv_get("detector/cpu") == b"\x80\x04state"
    assert db.idempotency_owner(f"{FIRING_FP}:scale-out:0:1764000000000") == "run-0001"
    assert db.list_anomalies()[0]["detector"] == "zscore"

    with db.begin() as conn:  # new rows after the upgrade get fresh ids (sequences carried over)
        new_id = conn.execute(sa.insert(outbox).values(receiver="x", group_key="", payload={}, created_ms=1)
                              ).inserted_primary_key[0]  # type: ignore[index]
    assert new_id > max(r["id"] for r in rows.values())


def test_the_migrated_schema_is_the_declared_schema(state_db: StateDB) -> None:
    """A table or column declared without a migration (or the reverse) fails here, naming it."""
    _import_every_table()
    with state_db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == [], (f"declared tables and migrations differ: {diff}; add a migration in "
                        "aiops/migrations/versions (docs/ARCHITECTURE.md, 'State database')")
